// The live row stream (DESIGN §6): GET /db/{id}/rest/{table}/stream as Server-Sent Events. Credentials as for REST
// (browsers' EventSource sends no headers, so ?apikey= and ?access_token= work too), PostgREST filters, resume with
// Last-Event-ID (header or ?last_event_id=; ids are bound to the credential and table). PostgreSQL decides what each
// subscriber sees (StreamVisibility); the frames come ready-made from the ChangeHub; this only writes them.
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
using DbStudio.Core.Catalog;

namespace DbStudio.Web.Apis;

/// <summary>What the stream's subscribe path needs (one record, so callers pass one thing).</summary>
internal sealed record StreamServices(SchemaCache Schemas, AccessPolicies Access, ChangeCapture Capture, ChangeHub Hub, StreamVisibility Visibility);

/// <summary>An opened subscription, or why not: the HTTP status and PostgREST error.</summary>
internal readonly record struct StreamOpening(Subscription? Subscription, int Status, RestError? Error);

public static class StreamApi
{
    /// <summary>Query parameters that are not filters.</summary>
    private static readonly HashSet<string> Reserved = ["apikey", "access_token", "last_event_id", "select"];

    public static IEndpointRouteBuilder MapStreamApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/db/{id}/rest/{table}/stream", Handle).RequireCors(RestApi.CorsPolicy).RequireRateLimiting(RestApi.RateLimitPolicy).WithTags("REST");
        return app;
    }

    /// <summary>Checks the request and subscribes; null when it was refused (the error is written).</summary>
    private static async Task<Subscription?> SubscribeAsync(HttpContext ctx, string id, string table, Credentials credentials,
        SchemaCache schemas, AccessPolicies access, ChangeCapture capture, ChangeHub hub, StreamVisibility visibility)
    {
        var caller = await RestApi.ResolveCallerAsync(ctx, id, credentials);
        if (caller is null) { await RestApi.WriteError(ctx, 401, RestApi.Unauthorized()); return null; }
        var pairs = ctx.Request.Query.Where(kv => !Reserved.Contains(kv.Key))
            .SelectMany(kv => kv.Value.Select(v => new KeyValuePair<string, string>(kv.Key, v ?? ""))).ToList();
        var last = ctx.Request.Headers["Last-Event-ID"].FirstOrDefault();
        if (string.IsNullOrEmpty(last)) last = ctx.Request.Query["last_event_id"].FirstOrDefault();
        var credential = new StreamCredential(RestApi.ApiKey(ctx), RestApi.BearerToken(ctx));
        // The parsed query (half a kilobyte) would stay cached on the request for the stream's whole life; everything
        // needed from it is read. Without the feature, a later Request.Query parses the query string again. (The request
        // object caches features until its next read of one sees the collection changed: that read is the last line.)
        ctx.Features.Set<IQueryFeature>(null);
        _ = ctx.Request.QueryString;
        var opened = await OpenAsync(new StreamServices(schemas, access, capture, hub, visibility), id, table, caller, pairs,
            credential, last, null, ctx.RequestAborted);
        if (opened.Error is { } error) await RestApi.WriteError(ctx, opened.Status, error);
        return opened.Subscription;
    }

    /// <summary>
    /// Subscribes <paramref name="caller"/> to a table's changes that pass <paramref name="filters"/> (PostgREST filters),
    /// after PostgreSQL has said the credential may follow it at all — or says why not (status and PostgREST error). A
    /// stream resumes after <paramref name="lastEventId"/> (an id this stream gave out, verified) or after a change id the
    /// server itself holds (<paramref name="resumeAfter"/>: the realtime socket renewing a subscription). Shared by the SSE
    /// stream and supabase-js's realtime socket, so both see exactly what PostgreSQL lets the credential see.
    /// </summary>
    internal static async Task<StreamOpening> OpenAsync(StreamServices s, string id, string table, RestCaller caller,
        IReadOnlyList<KeyValuePair<string, string>> filters, StreamCredential credential, string? lastEventId, long? resumeAfter,
        CancellationToken ct)
    {
        var info = await s.Schemas.FindTableAsync(id, table, ct);
        if (info is null || !info.IsTable)
            return new(null, 404, new RestError("PGRST205",
                $"Could not find the table '{ProjectNaming.Schema(id)}.{RestParser.Trim(table)}' in the schema cache", null, null));
        Audience audience;
        long? resume = resumeAfter;
        try
        {
            await s.Access.EnsureAsync(id, info, ct); // a table made elsewhere gets the secure defaults first
            var req = RestParser.Parse(RestVerb.Get, table, filters, [], null, null, null);
            if (req.Order.Count > 0 || req.Limit is not null || req.Offset > 0)
                throw RestException.BadRequest("A stream takes filters only", null, "Leave out order, limit and offset");
            RestSql.FilterCondition(req.Filters, info, "t", []); // unknown columns: 400 as GET says it
            var filterKey = string.Join("&", filters.OrderBy(p => p.Key, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal)
                .Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
            audience = new Audience(StreamIdentity.Of(caller), req.Filters, filterKey);
            if (!string.IsNullOrEmpty(lastEventId))
                resume = await s.Hub.ResumePointAsync(id, info, audience.Identity, lastEventId, ct)
                    ?? throw RestException.BadRequest("Last-Event-ID is not an event id this stream gave to this credential",
                        "Event ids are valid only for the credential and table they were sent to", "Reconnect without Last-Event-ID and reload the table");
            // PostgreSQL decides whether this credential may follow the table at all (and filter on these columns).
            if (await s.Visibility.CheckAsync(id, info, audience, ct) is { } denied)
            {
                var (status, error) = SqlStateHttp.From(denied, caller.IsAnonymous);
                return new(null, status, error);
            }
            await s.Capture.EnsureAsync(id, info.Oid, ct);
            return new(await s.Hub.SubscribeAsync(id, info, audience, credential, resume, ct), 200, null);
        }
        catch (RestException e)
        {
            return new(null, e.Status, e.Error);
        }
        catch (Npgsql.NpgsqlException e) when (e is not Npgsql.PostgresException { SqlState: not ("57P01" or "57P02" or "57P03" or "53300") })
        {
            // Clients retry (EventSource does by itself) and resume with Last-Event-ID.
            return new(null, 503, new RestError("PGRST001", "Could not connect to the database", null, "Retry in a moment"));
        }
    }

    private static async Task Handle(HttpContext ctx, string id, string table, Credentials credentials, SchemaCache schemas,
        AccessPolicies access, ChangeCapture capture, ChangeHub hub, StreamVisibility visibility, IOptions<DbStudioOptions> options)
    {
        // Opening is a method of its own, so nothing it parsed stays alive (in this one's state) for the stream's life.
        var sub = await SubscribeAsync(ctx, id, table, credentials, schemas, access, capture, hub, visibility);
        if (sub is null) return; // refused: the error is written
        var ct = ctx.RequestAborted;
        await using var _ = sub;

        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        ctx.Response.ContentType = "text/event-stream; charset=utf-8";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        var body = ctx.Response.BodyWriter;
        var opt = options.Value.Streams;
        await body.WriteAsync(Encoding.UTF8.GetBytes($"retry: {(int)opt.Retry.TotalMilliseconds}\n: connected\n\n"), ct);
        if (sub.Reset) await body.WriteAsync(await hub.ResetFrameAsync(sub, ct), ct);
        await body.FlushAsync(ct);

        try
        {
            // The replay from the log (Last-Event-ID), written as it is read…
            var last = sub.StartAfter;
            var unflushed = 0;
            await foreach (var frame in hub.ReplayAsync(sub, last, ct))
            {
                body.Write(frame.Bytes);
                last = frame.Id;
                if ((unflushed += frame.Bytes.Length) < 32 * 1024) continue;
                await body.FlushAsync(ct);
                unflushed = 0;
            }
            await body.FlushAsync(ct);
            // …then live: the hub writes each frame straight into this response (SseSink) until the client leaves, falls
            // behind or its credential stops.
            var sink = new SseSink(body, sub.Capacity);
            sub.Attach(sink, last);
            // (Off the canceling thread: it may be Kestrel's, inside its locks.)
            using (ct.UnsafeRegister(static s => ThreadPool.UnsafeQueueUserWorkItem(static k => k.Close(StreamEnd.Closed), (SseSink)s!, false), sink))
                await sink.Ended;
            await sub.DisposeAsync(); // leaves the hub now, not after the last bytes are out
            await sink.FinishAsync();
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // the client went away
        }
    }

    /// <summary>
    /// The live end of one SSE response. The hub's thread hands frames in; each flush sends the frames gathered since
    /// the last one as one write (PipeWriter.WriteAsync: a copy into Kestrel's buffer and a flush, under Kestrel's own
    /// lock). While a write is still on its way (the client reads slowly) frames gather up to the subscription's
    /// capacity; past it the subscriber is dropped. Nothing here blocks the hub.
    /// </summary>
    private sealed class SseSink(System.IO.Pipelines.PipeWriter writer, int capacity) : IStreamSink
    {
        private static readonly ReadOnlyMemory<byte> DroppedEvent =
            "event: dropped\ndata: {\"reason\":\"This client fell behind and was disconnected; reconnect with Last-Event-ID to resume\"}\n\n"u8.ToArray();
        private static readonly ReadOnlyMemory<byte> RevokedEvent =
            "event: revoked\ndata: {\"reason\":\"The credential of this stream stopped working or changed (logout, expiry, role change, key rotation, deleted project); sign in again and reconnect\"}\n\n"u8.ToArray();
        /// <summary>Past this many bytes gathered, a write goes out without waiting for the hub's flush.</summary>
        private const int WriteEvery = 64 * 1024;

        private readonly Lock _gate = new();
        private readonly TaskCompletionSource<StreamEnd> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private List<ReadOnlyMemory<byte>>? _pending;
        private int _pendingBytes;
        private Task? _writing;
        private bool _closed;

        /// <summary>Completes when the stream ends, saying how.</summary>
        public Task<StreamEnd> Ended => _ended.Task;

        public bool Deliver(in StreamFrame frame)
        {
            ReadOnlyMemory<byte> bytes = frame.Bytes;
            lock (_gate)
            {
                if (_closed) return true;
                (_pending ??= []).Add(bytes);
                _pendingBytes += bytes.Length;
                if (_writing is not null) return _pending.Count <= capacity;
                if (_pendingBytes >= WriteEvery) WriteLocked();
                return true;
            }
        }

        public void Flush()
        {
            lock (_gate)
                if (_writing is null && !_closed && _pending is { Count: > 0 }) WriteLocked();
        }

        /// <summary>Ends the stream; a dropped or revoked subscriber's last event says so (after what is already on its way).</summary>
        public void Close(StreamEnd end)
        {
            lock (_gate)
            {
                if (_closed) return;
                _pending?.Clear();
                _pendingBytes = 0;
                if (end != StreamEnd.Closed) (_pending ??= []).Add(end == StreamEnd.Dropped ? DroppedEvent : RevokedEvent);
                _closed = true;
                _ended.TrySetResult(end);
            }
        }

        /// <summary>After <see cref="Ended"/>: sends what is left (the dropped event) behind whatever is on its way —
        /// Kestrel takes the bytes at once — and waits a while for a client that reads slowly (one that reads nothing is
        /// cut off by Kestrel's minimum data rate).</summary>
        public async Task FinishAsync()
        {
            List<ReadOnlyMemory<byte>>? rest;
            lock (_gate)
            {
                _closed = true;
                rest = _pending;
                _pending = null;
            }
            if (rest is not { Count: > 0 }) return;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                foreach (var bytes in rest) await writer.WriteAsync(bytes, timeout.Token);
            }
            catch (OperationCanceledException) { /* the response ends with what got out */ }
        }

        private void WriteLocked()
        {
            var frames = _pending!; // copied into Kestrel's buffer before WriteAsync returns: the list is reused
            var length = _pendingBytes;
            _pendingBytes = 0;
            ValueTask<System.IO.Pipelines.FlushResult> write;
            byte[]? rented = null;
            try
            {
                if (frames.Count == 1) write = writer.WriteAsync(frames[0]);
                else
                {
                    // One write for the lot: Kestrel copies it into its buffer before WriteAsync returns.
                    rented = ArrayPool<byte>.Shared.Rent(length);
                    var at = 0;
                    foreach (var f in frames)
                    {
                        f.Span.CopyTo(rented.AsSpan(at));
                        at += f.Length;
                    }
                    write = writer.WriteAsync(rented.AsMemory(0, length));
                }
            }
            catch (Exception)
            {
                EndLocked();
                return;
            }
            finally
            {
                if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
                frames.Clear();
            }
            if (write.IsCompletedSuccessfully)
            {
                if (write.Result.IsCompleted || write.Result.IsCanceled) EndLocked();
                return;
            }
            _writing = AwaitWriteAsync(write);
        }

        private async Task AwaitWriteAsync(ValueTask<System.IO.Pipelines.FlushResult> write)
        {
            bool gone;
            try
            {
                var result = await write;
                gone = result.IsCompleted || result.IsCanceled;
            }
            catch (Exception) { gone = true; }
            // The write may complete on Kestrel's own thread, inside its locks, while the hub's thread holds _gate and
            // waits for those locks: carry on from the thread pool instead.
            await Task.Yield();
            lock (_gate)
            {
                _writing = null;
                if (gone) { EndLocked(); return; }
                if (!_closed && _pending is { Count: > 0 }) WriteLocked();
            }
        }

        private void EndLocked()
        {
            _closed = true;
            _pending = null;
            _ended.TrySetResult(StreamEnd.Closed);
        }
    }
}
