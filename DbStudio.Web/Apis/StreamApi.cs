// The live row stream (DESIGN §6): GET /db/{id}/rest/{table}/stream as Server-Sent Events. Credentials as for REST
// (browsers' EventSource sends no headers, so ?apikey= and ?access_token= work too), PostgREST filters, resume with
// Last-Event-ID (header or ?last_event_id=). The frames come ready-made from the ChangeHub; this only writes them.
// Written by hand rather than with TypedResults.ServerSentEvents because SSE comments (the heartbeat) and a leading
// retry: field are part of the contract, and frames are shared bytes built once per change.
using System.Buffers;
using System.Text;
using DbStudio.Core.Access;
using DbStudio.Core.Auth;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Streams;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using DbStudio.Core;

namespace DbStudio.Web.Apis;

public static class StreamApi
{
    /// <summary>Query parameters that are not filters.</summary>
    private static readonly HashSet<string> Reserved = ["apikey", "access_token", "last_event_id", "select"];

    public static IEndpointRouteBuilder MapStreamApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/db/{id}/rest/{table}/stream", Handle).RequireCors(RestApi.CorsPolicy).RequireRateLimiting(RestApi.RateLimitPolicy).WithTags("REST");
        return app;
    }

    private static async Task Handle(HttpContext ctx, string id, string table, Credentials credentials, SchemaCache schemas,
        AccessPolicies access, ChangeCapture capture, ChangeHub hub, IOptions<DbStudioOptions> options)
    {
        var caller = await RestApi.ResolveCallerAsync(ctx, id, credentials);
        if (caller is null) { await RestApi.WriteError(ctx, 401, RestApi.Unauthorized()); return; }
        var info = await schemas.FindTableAsync(id, table, ctx.RequestAborted);
        if (info is null || !info.IsTable)
        {
            await RestApi.WriteError(ctx, 404, new RestError("PGRST205",
                $"Could not find the table '{ProjectNaming.Schema(id)}.{RestParser.Trim(table)}' in the schema cache", null, null));
            return;
        }
        var settings = await access.EnsureAsync(id, info, ctx.RequestAborted);
        if (!ChangeView.CanReadAny(caller, settings))
        {
            // As GET would answer an insert-less role: nothing of this table is readable with this credential.
            await RestApi.WriteError(ctx, caller.IsAnonymous ? 401 : 403, new RestError("42501",
                $"permission denied for table {info.Name}", "This credential may read no rows of the table, so it cannot follow its changes",
                caller.IsAnonymous ? "Turn on anon_select in the Access tab, or sign in" : "Turn on auth_select_own with an owner column in the Access tab"));
            return;
        }

        RowFilter filter;
        long? lastEventId = null;
        try
        {
            var query = ctx.Request.Query.Where(kv => !Reserved.Contains(kv.Key))
                .SelectMany(kv => kv.Value.Select(v => new KeyValuePair<string, string>(kv.Key, v ?? "")));
            var req = RestParser.Parse(RestVerb.Get, table, query, [], null, null, null);
            if (req.Order.Count > 0 || req.Limit is not null || req.Offset > 0)
                throw RestException.BadRequest("A stream takes filters only", null, "Leave out order, limit and offset");
            filter = RowFilter.Create(req.Filters, info);
            var last = ctx.Request.Headers["Last-Event-ID"].FirstOrDefault();
            if (string.IsNullOrEmpty(last)) last = ctx.Request.Query["last_event_id"].FirstOrDefault();
            if (!string.IsNullOrEmpty(last))
                lastEventId = long.TryParse(last, out var l) && l >= 0 ? l
                    : throw RestException.BadRequest("Last-Event-ID must be an event id from this stream", $"\"{RestParser.Trim(last)}\" is not one", null);
        }
        catch (RestException e)
        {
            await RestApi.WriteError(ctx, e.Status, e.Error);
            return;
        }

        Subscription sub;
        try
        {
            await capture.EnsureAsync(id, info.Oid, ctx.RequestAborted);
            sub = await hub.SubscribeAsync(id, new ChangeView(caller, info, filter), lastEventId, ctx.RequestAborted);
        }
        catch (Npgsql.NpgsqlException e) when (e is not Npgsql.PostgresException { SqlState: not ("57P01" or "57P02" or "57P03") })
        {
            // Clients retry (EventSource does by itself) and resume with Last-Event-ID.
            await RestApi.WriteError(ctx, 503, new RestError("PGRST001", "Could not connect to the database", null, "Retry in a moment"));
            return;
        }
        await using var _ = sub;

        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        ctx.Response.ContentType = "text/event-stream; charset=utf-8";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        var body = ctx.Response.BodyWriter;
        var opt = options.Value.Streams;
        await body.WriteAsync(Encoding.UTF8.GetBytes($"retry: {(int)opt.Retry.TotalMilliseconds}\n: connected\n\n"), ctx.RequestAborted);
        if (sub.Reset)
            await body.WriteAsync(Encoding.UTF8.GetBytes(
                $"id: {sub.StartAfter}\nevent: reset\ndata: {{\"reason\":\"Last-Event-ID {lastEventId} is outside the retained change log; reload the table\"," +
                $"\"last_event_id\":{sub.StartAfter}}}\n\n"), ctx.RequestAborted);
        await body.FlushAsync(ctx.RequestAborted);

        try
        {
            await foreach (var frame in hub.FollowAsync(sub, ctx.RequestAborted))
            {
                if (frame.Id == ChangeHub.HeartbeatFrame.Id) await body.WriteAsync(": heartbeat\n\n"u8.ToArray(), ctx.RequestAborted);
                else if (frame.Id == ChangeHub.DroppedFrame.Id)
                {
                    await body.WriteAsync(Encoding.UTF8.GetBytes(
                        "event: dropped\ndata: {\"reason\":\"This client fell behind and was disconnected; reconnect with Last-Event-ID to resume\"}\n\n"),
                        ctx.RequestAborted);
                    break;
                }
                else
                {
                    body.Write(frame.Bytes.Span);
                    if (sub.Frames.Count > 0) continue; // more queued: one flush for the lot
                }
                await body.FlushAsync(ctx.RequestAborted);
            }
            await body.FlushAsync(ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // the client went away
        }
    }
}
