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

        var ct = ctx.RequestAborted;
        try
        {
            // The replay from the log (Last-Event-ID), written as it is read…
            var last = sub.StartAfter;
            var unflushed = 0;
            await foreach (var frame in hub.ReplayAsync(sub, last, ct))
            {
                body.Write(frame.Bytes.Span);
                last = frame.Id;
                if ((unflushed += frame.Bytes.Length) < 32 * 1024) continue;
                await body.FlushAsync(ct);
                unflushed = 0;
            }
            await body.FlushAsync(ct);
            // …then live: the hub writes each frame straight into this response (SseSink) until the client leaves or
            // falls behind.
            var sink = new SseSink(body, sub.Capacity);
            sub.Attach(sink, last);
            bool dropped;
            using (ct.UnsafeRegister(static s => ((SseSink)s!).Close(dropped: false), sink))
                dropped = await sink.Ended;
            if (await sink.FinishAsync() && dropped && !ct.IsCancellationRequested)
            {
                await body.WriteAsync(
                    "event: dropped\ndata: {\"reason\":\"This client fell behind and was disconnected; reconnect with Last-Event-ID to resume\"}\n\n"u8.ToArray(), ct);
                await body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // the client went away
        }
    }

    /// <summary>
    /// The live end of one SSE response. The hub's thread writes each frame into Kestrel's response pipe and flushes; a
    /// flush that cannot finish at once (the client reads slowly) makes later frames wait in a backlog, written when it
    /// completes; a backlog past the subscription's capacity drops the subscriber. Nothing here blocks the hub.
    /// </summary>
    private sealed class SseSink(System.IO.Pipelines.PipeWriter writer, int capacity) : IStreamSink
    {
        private static readonly ReadOnlyMemory<byte> Heartbeat = ": heartbeat\n\n"u8.ToArray();
        private readonly Lock _gate = new();
        private readonly TaskCompletionSource<bool> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Queue<ReadOnlyMemory<byte>>? _backlog;
        private Task? _flushing;
        private bool _closed;
        private bool _unflushed;

        /// <summary>Completes when the stream ends: true if the subscriber was dropped for falling behind.</summary>
        public Task<bool> Ended => _ended.Task;

        public bool Deliver(in StreamFrame frame)
        {
            var bytes = frame.Id == ChangeHub.HeartbeatFrame.Id ? Heartbeat : frame.Bytes;
            lock (_gate)
            {
                if (_closed) return true;
                if (_flushing is not null)
                {
                    (_backlog ??= new Queue<ReadOnlyMemory<byte>>()).Enqueue(bytes);
                    return _backlog.Count <= capacity;
                }
                writer.Write(bytes.Span);
                _unflushed = true;
                return true;
            }
        }

        public void Flush()
        {
            lock (_gate)
                if (_unflushed && !_closed && _flushing is null) FlushLocked();
        }

        public void Close(bool dropped)
        {
            lock (_gate) EndLocked(dropped);
        }

        /// <summary>After <see cref="Ended"/>: no more writes from the hub; waits (a while) for a flush in progress.
        /// True when the response can still be written to.</summary>
        public async Task<bool> FinishAsync()
        {
            Task? flushing;
            lock (_gate)
            {
                _closed = true;
                flushing = _flushing;
            }
            if (flushing is null) return true;
            // A client that reads nothing is cut off by Kestrel's minimum data rate; do not wait for it forever.
            return await Task.WhenAny(flushing, Task.Delay(TimeSpan.FromSeconds(10))) == flushing;
        }

        private void FlushLocked()
        {
            _unflushed = false;
            ValueTask<System.IO.Pipelines.FlushResult> flush;
            try { flush = writer.FlushAsync(); }
            catch (Exception) { EndLocked(dropped: false); return; }
            if (flush.IsCompletedSuccessfully)
            {
                if (flush.Result.IsCompleted || flush.Result.IsCanceled) EndLocked(dropped: false);
                return;
            }
            _flushing = AwaitFlushAsync(flush);
        }

        private async Task AwaitFlushAsync(ValueTask<System.IO.Pipelines.FlushResult> flush)
        {
            bool gone;
            try
            {
                var result = await flush;
                gone = result.IsCompleted || result.IsCanceled;
            }
            catch (Exception) { gone = true; }
            lock (_gate)
            {
                _flushing = null;
                if (gone) { EndLocked(dropped: false); return; }
                if (_closed || _backlog is not { Count: > 0 }) return;
                while (_backlog.TryDequeue(out var bytes)) writer.Write(bytes.Span);
                FlushLocked();
            }
        }

        private void EndLocked(bool dropped)
        {
            _closed = true;
            _backlog = null;
            _ended.TrySetResult(dropped);
        }
    }
}
