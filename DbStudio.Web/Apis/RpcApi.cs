// RPC in PostgREST's dialect (DESIGN §5): POST|GET|HEAD /db/{id}/rest/rpc/{fn}. Like RestApi, the handler only moves
// bytes: credentials → caller, request → RpcParser, RpcExecutor calls the function, RestResponses writes its result.
using DbStudio.Core;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using DbStudio.Core.Auth;

namespace DbStudio.Web.Apis;

public static class RpcApi
{
    /// <param name="prefix">the REST API's base path (the same routes serve any base the REST API is mounted at)</param>
    public static IEndpointRouteBuilder MapRpcApi(this IEndpointRouteBuilder app, string prefix = "/db/{id}/rest")
    {
        var g = app.MapGroup(prefix).RequireCors(RestApi.CorsPolicy).RequireRateLimiting(RestApi.RateLimitPolicy).WithTags("REST");
        g.MapMethods("/rpc/{fn}", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], Handle).DisableAntiforgery();
        return app;
    }

    private static async Task Handle(HttpContext ctx, string id, string fn, Credentials credentials, RpcExecutor executor,
        RestMetrics metrics, IOptions<DbStudioOptions> options)
    {
        var caller = await RestApi.ResolveCallerAsync(ctx, id, credentials);
        if (ProjectNaming.IsValidId(id)) metrics.Record(id, RestMetrics.LevelOf(caller));
        if (caller is null) { await RestApi.WriteError(ctx, 401, RestApi.Unauthorized()); return; }
        var method = ctx.Request.Method;
        RestVerb verb;
        switch (method)
        {
            case "GET": verb = RestVerb.Get; break;
            case "HEAD": verb = RestVerb.Head; break;
            case "POST": verb = RestVerb.Post; break;
            default:
                await RestApi.WriteError(ctx, 405, new RestError("PGRST101", $"Cannot use the {method} method on RPC", null,
                    "Call functions with POST (any function) or GET (STABLE and IMMUTABLE functions)"));
                return;
        }
        string? body = null;
        if (verb == RestVerb.Post)
        {
            var max = options.Value.Rest.MaxBodyBytes;
            if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = max;
            var tooLarge = new RestError("PGRST413", $"The request body is larger than {max:N0} bytes", null, null);
            if (ctx.Request.ContentLength > max) { await RestApi.WriteError(ctx, 413, tooLarge); return; }
            try
            {
                using var reader = new StreamReader(ctx.Request.Body);
                body = await reader.ReadToEndAsync(ctx.RequestAborted);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                await RestApi.WriteError(ctx, 413, tooLarge);
                return;
            }
        }

        RpcRequest req;
        try
        {
            var query = ctx.Request.Query.SelectMany(kv => kv.Value.Select(v => new KeyValuePair<string, string>(kv.Key, v ?? "")));
            req = RpcParser.Parse(verb, fn, query, ctx.Request.Headers["Prefer"].Select(p => p ?? "").ToList(),
                ctx.Request.Headers.Range.FirstOrDefault(), ctx.Request.Headers.Accept.FirstOrDefault(), body);
        }
        catch (RestException e)
        {
            await RestApi.WriteError(ctx, e.Status, e.Error);
            return;
        }

        using var span = RestResponses.StartSpan("rest rpc");
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var result = await executor.ExecuteAsync(caller, req, ctx.RequestAborted);
        RestResponses.Finish(span, started, "Rpc", caller, "dbstudio.function", req.Function, result);
        await RestResponses.WriteAsync(ctx, result, head: verb == RestVerb.Head);
    }
}
