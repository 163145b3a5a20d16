// The REST API in PostgREST's dialect (DESIGN §5): /db/{id}/rest/{table}. The handler only moves bytes:
// credentials → caller, request → RestParser, RestExecutor runs it, RestResponses writes its result (PostgreSQL's JSON as it is).
using DbStudio.Core;
using DbStudio.Core.Auth;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using DbStudio.Core.Catalog;

namespace DbStudio.Web.Apis;

public static class RestApi
{
    public const string CorsPolicy = "rest";
    /// <summary>The per-credential rate limit (DbStudio:Rest:RequestsPerSecondPerKey); the per-address one is global.</summary>
    public const string RateLimitPolicy = "rest-key";

    public static IEndpointRouteBuilder MapRestApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/db/{id}/rest").RequireCors(CorsPolicy).RequireRateLimiting(RateLimitPolicy).WithTags("REST");
        g.MapMethods("/{table}", ["GET", "HEAD", "POST", "PATCH", "DELETE"], Handle).DisableAntiforgery();
        g.MapGet("/", OpenApi); // also answers /db/{id}/rest without the slash
        return app;
    }

    /// <summary>Each verb's span name ("rest GET") and tag ("Get"), made once rather than for every request.</summary>
    private static readonly string[] SpanNames = [.. Enum.GetValues<RestVerb>().Select(v => "rest " + v.ToString().ToUpperInvariant())];
    private static readonly string[] VerbTags = [.. Enum.GetValues<RestVerb>().Select(v => v.ToString())];

    private static async Task Handle(HttpContext ctx, string id, string table, Credentials credentials, RestExecutor executor,
        RestMetrics metrics, IOptions<DbStudioOptions> options)
    {
        var caller = await ResolveCallerAsync(ctx, id, credentials);
        if (ProjectNaming.IsValidId(id)) metrics.Record(id, RestMetrics.LevelOf(caller));
        if (caller is null) { await WriteError(ctx, 401, Unauthorized()); return; }
        var verb = ctx.Request.Method switch
        {
            "GET" => RestVerb.Get, "HEAD" => RestVerb.Head, "POST" => RestVerb.Post, "PATCH" => RestVerb.Patch, _ => RestVerb.Delete,
        };
        string? body = null;
        if (verb is RestVerb.Post or RestVerb.Patch)
        {
            var max = options.Value.Rest.MaxBodyBytes;
            if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = max;
            if (ctx.Request.ContentLength > max)
            {
                await WriteError(ctx, 413, new RestError("PGRST413", $"The request body is larger than {max:N0} bytes", null, null));
                return;
            }
            try
            {
                using var reader = new StreamReader(ctx.Request.Body);
                body = await reader.ReadToEndAsync(ctx.RequestAborted);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                await WriteError(ctx, 413, new RestError("PGRST413", $"The request body is larger than {max:N0} bytes", null, null));
                return;
            }
        }

        RestRequest req;
        try
        {
            var query = ctx.Request.Query.SelectMany(kv => kv.Value.Select(v => new KeyValuePair<string, string>(kv.Key, v ?? "")));
            var prefer = ctx.Request.Headers["Prefer"];
            req = RestParser.Parse(verb, table, query, prefer.Count == 0 ? [] : prefer.Select(p => p ?? "").ToList(),
                ctx.Request.Headers.Range.FirstOrDefault(), ctx.Request.Headers.Accept.FirstOrDefault(), body);
        }
        catch (RestException e)
        {
            await WriteError(ctx, e.Status, e.Error);
            return;
        }

        using var span = RestResponses.StartSpan(SpanNames[(int)verb]);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var result = await executor.ExecuteAsync(caller, req, ctx.RequestAborted);
        RestResponses.Finish(span, started, VerbTags[(int)verb], caller, "dbstudio.table", req.Table, result);
        await RestResponses.WriteAsync(ctx, result, head: verb == RestVerb.Head);
    }

    private static async Task OpenApi(HttpContext ctx, string id, Credentials credentials, SchemaCache schemas,
        PlatformDbContext db, IOptions<DbStudioOptions> options, FunctionCatalog functions)
    {
        var caller = await ResolveCallerAsync(ctx, id, credentials);
        if (caller is null) { await WriteError(ctx, 401, Unauthorized()); return; }
        var name = await db.Projects.Where(p => p.Id == id).Select(p => p.Name).FirstOrDefaultAsync(ctx.RequestAborted) ?? id;
        // Privileges change with the Access tab's settings and GRANTs from the console: read them fresh (at most a few
        // times a second per project, SchemaCache's throttle).
        var snapshot = await schemas.ReloadIfOlderAsync(id, await schemas.GetAsync(id, ctx.RequestAborted));
        var fns = await functions.ReloadIfOlderAsync(id, await functions.GetAsync(id, ctx.RequestAborted));
        var doc = OpenApiDocument.Build(name, $"{ProjectsApi.BaseUrl(ctx.Request, options)}/db/{id}/rest", snapshot, caller.Role, fns);
        ctx.Response.ContentType = "application/openapi+json; charset=utf-8";
        await ctx.Response.WriteAsync(doc.ToJsonString(), ctx.RequestAborted);
    }

    /// <summary>apikey header (or ?apikey=), Authorization: Bearer (or ?access_token=) — DESIGN §3.</summary>
    internal static Task<RestCaller?> ResolveCallerAsync(HttpContext ctx, string id, Credentials credentials)
    {
        if (!ProjectNaming.IsValidId(id)) return Task.FromResult<RestCaller?>(null);
        return credentials.ResolveAsync(id, ApiKey(ctx), BearerToken(ctx), ctx.RequestAborted);
    }

    /// <summary>The apikey header, else ?apikey= (EventSource sends no headers).</summary>
    internal static string? ApiKey(HttpContext ctx)
    {
        var apiKey = ctx.Request.Headers["apikey"].FirstOrDefault();
        return string.IsNullOrEmpty(apiKey) ? ctx.Request.Query["apikey"].FirstOrDefault() : apiKey;
    }

    internal static string? BearerToken(HttpContext ctx)
    {
        var auth = ctx.Request.Headers.Authorization.FirstOrDefault();
        if (auth is not null && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return auth[7..].Trim();
        var fromQuery = ctx.Request.Query["access_token"].FirstOrDefault();
        return string.IsNullOrEmpty(fromQuery) ? null : fromQuery;
    }

    internal static RestError Unauthorized() => new("PGRST301", "No valid API key or session token for this project was sent",
        null, "Send the project's ANON key in the apikey header, or Authorization: Bearer with the DB_API_KEY or a session token");

    internal static Task WriteError(HttpContext ctx, int status, RestError error)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(error, ctx.RequestAborted);
    }
}
