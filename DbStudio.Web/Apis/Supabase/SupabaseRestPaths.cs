// supabase-js's REST client unchanged (DESIGN §5): /db/{id}/supabase/rest/v1/… IS the REST API at /db/{id}/rest/… — the
// same endpoints, pipeline, auth levels, CORS and rate limits, because the path is rewritten before routing (a startup
// filter runs ahead of the app's own pipeline), so every REST route, present and future, answers under both.
// supabase-js sends its schema as Accept-Profile (reads) / Content-Profile (writes): "public" means the project's schema;
// any other profile gets PostgREST's 406 PGRST106.
using System.Text.Json;
using DbStudio.Core.Rest;

namespace DbStudio.Web.Apis.Supabase;

public sealed class SupabaseRestPaths : IStartupFilter
{
    public const string Profile = "public";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(static (ctx, nextMiddleware) => Rewrite(ctx) is { } refusal ? refusal : nextMiddleware(ctx));
        next(app);
    };

    /// <summary>Rewrites a supabase REST path in place; a task when the request is answered here (a wrong profile).</summary>
    private static Task? Rewrite(HttpContext ctx)
    {
        // /db/{id}/supabase/rest/v1[/rest]
        var path = ctx.Request.Path.Value;
        if (path is null || !path.StartsWith("/db/", StringComparison.Ordinal)) return null;
        var idEnd = path.IndexOf('/', 4);
        if (idEnd < 0) return null;
        const string marker = "/supabase/rest/v1";
        if (string.CompareOrdinal(path, idEnd, marker, 0, marker.Length) != 0) return null;
        var restStart = idEnd + marker.Length;
        if (restStart < path.Length && path[restStart] != '/') return null; // e.g. …/rest/v10
        if (!HttpMethods.IsOptions(ctx.Request.Method))
        {
            var header = HttpMethods.IsGet(ctx.Request.Method) || HttpMethods.IsHead(ctx.Request.Method) ? "Accept-Profile" : "Content-Profile";
            var profile = ctx.Request.Headers[header].FirstOrDefault();
            if (!string.IsNullOrEmpty(profile) && profile != Profile) return WrongProfile(ctx);
        }
        ctx.Request.Path = string.Concat(path.AsSpan(0, idEnd), "/rest", path.AsSpan(restStart));
        return null;
    }

    private static Task WrongProfile(HttpContext ctx)
    {
        ctx.Response.StatusCode = StatusCodes.Status406NotAcceptable;
        ctx.Response.Headers.AccessControlAllowOrigin = "*"; // answered before the CORS middleware: browsers must see it
        ctx.Response.ContentType = "application/json; charset=utf-8";
        return ctx.Response.WriteAsync(JsonSerializer.Serialize(new RestError("PGRST106",
            $"The schema must be one of the following: {Profile}", null,
            "The project's tables are in the schema supabase-js calls 'public' (its default): leave out the schema option")), ctx.RequestAborted);
    }
}
