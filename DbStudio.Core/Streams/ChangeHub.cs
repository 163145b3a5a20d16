// Fan-out of the change log (DESIGN §6): one LISTEN connection per app instance, one reader per project with
// subscribers, and a bounded queue per subscriber. A subscriber that falls behind is dropped (it resumes from the log
// with Last-Event-ID), so a slow client never slows the others nor grows memory without bound. Every subscriber starts
// with a replay from the log, so nothing committed between "subscribed" and "live" is lost, and ids are de-duplicated.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Streams;

public sealed class StreamOptions
{
    /// <summary>How long changes stay in the log for resuming (Last-Event-ID).</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromHours(24);
    /// <summary>Events one subscriber may have queued before it is dropped.</summary>
    public int QueueCapacity { get; set; } = 2048;
    /// <summary>Longest silence on a stream before a heartbeat comment.</summary>
    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(15);
    /// <summary>The reconnect delay advised to clients (SSE retry:).</summary>
    public TimeSpan Retry { get; set; } = TimeSpan.FromSeconds(2);
    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>One frame for one subscriber: its change id (for de-duplication against the replay), the SSE bytes, and the
/// change itself (in-process subscribers such as the Data tab read that), <paramref name="AsDelete"/> when an update took the
/// row out of the subscriber's view.</summary>
public readonly record struct StreamFrame(long Id, ReadOnlyMemory<byte> Bytes, Change? Change = null, bool AsDelete = false)
{
    /// <summary>insert, update or delete, as the subscriber sees it.</summary>
    public string? Type => Change is null ? null : AsDelete || Change.Op == 'd' ? "delete" : Change.Op == 'i' ? "insert" : "update";
}

/// <summary>A live subscription; dispose it to leave.</summary>
public sealed class Subscription : IAsyncDisposable
{
    private readonly Channel<StreamFrame> _queue;
    private readonly Action<Subscription> _leave;

    internal Subscription(string projectId, ChangeView view, int capacity, long startAfter, Action<Subscription> leave)
    {
        ProjectId = projectId;
        View = view;
        StartAfter = startAfter;
        _leave = leave;
        _queue = Channel.CreateBounded<StreamFrame>(new BoundedChannelOptions(capacity)
            { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
    }

    public string ProjectId { get; }
    public ChangeView View { get; }
    /// <summary>The last change id before this subscription's stream begins (replay starts after it).</summary>
    public long StartAfter { get; }
    /// <summary>Set when the requested Last-Event-ID was outside the retained log: the client must reload.</summary>
    public bool Reset { get; init; }
    /// <summary>True once the subscriber fell behind and was dropped.</summary>
    public bool Dropped { get; private set; }

    public ChannelReader<StreamFrame> Frames => _queue.Reader;

    /// <summary>When something was last handed to this subscriber (Environment.TickCount64), for heartbeats.</summary>
    internal long LastActivity = Environment.TickCount64;

    /// <summary>A heartbeat, unless the queue already holds something (then it is not idle).</summary>
    internal void Beat()
    {
        if (!Dropped && _queue.Writer.TryWrite(ChangeHub.HeartbeatFrame)) LastActivity = Environment.TickCount64;
    }

    internal void Offer(StreamFrame frame)
    {
        if (Dropped) return;
        LastActivity = Environment.TickCount64;
        if (_queue.Writer.TryWrite(frame)) return;
        Dropped = true;
        ChangeHub.Dropped.Add(1);
        _queue.Writer.TryComplete();
    }

    private int _left;

    public ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        if (Interlocked.Exchange(ref _left, 1) == 0) _leave(this);
        return ValueTask.CompletedTask;
    }
}

public sealed class ChangeHub(NpgsqlDataSource platform, SchemaCache schemas, AccessPolicies access, IOptions<DbStudioOptions> options,
    Platform.PlatformSignals signals, ILogger<ChangeHub> log) : BackgroundService
{
    private StreamOptions Opt => options.Value.Streams;
    private readonly ConcurrentDictionary<string, ProjectFeed> _feeds = new();
    private readonly SemaphoreSlim _feedCreation = new(1, 1);
    private ILogger Log => log;

    /// <summary>Whether the LISTEN connection is up (health checks).</summary>
    public bool Listening { get; private set; }

    public int SubscriberCount => _feeds.Values.Sum(f => f.Count);

    /// <summary>
    /// Subscribes <paramref name="view"/> to its table. With <paramref name="lastEventId"/>, the stream continues after it
    /// (or is marked Reset when that id is no longer, or never was, in the log); without, it starts now.
    /// </summary>
    public async Task<Subscription> SubscribeAsync(string projectId, ChangeView view, long? lastEventId, CancellationToken ct = default)
    {
        var feed = await FeedAsync(projectId, ct);
        var (lastId, prunedThrough) = await StreamStateAsync(projectId, ct);
        var reset = lastEventId is long l && (l < prunedThrough || l > lastId);
        var start = lastEventId is long from && !reset ? from : lastId;
        var sub = new Subscription(projectId, view, Opt.QueueCapacity, start, s =>
        {
            feed.Remove(s);
            Telemetry.StreamSubscribers.Add(-1);
        }) { Reset = reset };
        feed.Add(sub);
        Telemetry.StreamSubscribers.Add(1);
        Activity.Current?.SetTag("dbstudio.stream.start_after", start).SetTag("dbstudio.stream.reset", reset);
        return sub;
    }

    /// <summary>A frame with no change: the stream has been idle for the heartbeat interval.</summary>
    public static readonly StreamFrame HeartbeatFrame = new(-1, ReadOnlyMemory<byte>.Empty);
    /// <summary>The last frame of a subscription that fell behind and was dropped.</summary>
    public static readonly StreamFrame DroppedFrame = new(-2, ReadOnlyMemory<byte>.Empty);

    /// <summary>
    /// Everything the subscription should receive, in id order and each id once: the replay from the log after
    /// <see cref="Subscription.StartAfter"/>, then live frames, with <see cref="HeartbeatFrame"/> when idle and
    /// <see cref="DroppedFrame"/> last if it fell behind.
    /// </summary>
    public async IAsyncEnumerable<StreamFrame> FollowAsync(Subscription sub,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        var last = sub.StartAfter;
        await foreach (var f in ReplayAsync(sub, last, ct))
        {
            last = f.Id;
            yield return f;
        }
        // One shared timer sends heartbeats (HeartbeatLoopAsync): waiting here needs no timer of its own.
        while (await sub.Frames.WaitToReadAsync(ct))
        {
            while (sub.Frames.TryRead(out var f))
            {
                if (f.Id == HeartbeatFrame.Id) yield return f;
                else if (f.Id > last)
                {
                    last = f.Id;
                    yield return f;
                }
            }
        }
        if (sub.Dropped) yield return DroppedFrame;
    }

    /// <summary>The log's changes for the subscription's table after <paramref name="after"/>, in id order, as its frames.</summary>
    public async IAsyncEnumerable<StreamFrame> ReplayAsync(Subscription sub, long after,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        const int batch = 500;
        var schema = ProjectNaming.Schema(sub.ProjectId);
        while (true)
        {
            var changes = await ReadAsync("WHERE schema_name = $1 AND id > $2 AND table_name = $3", [schema, after, sub.View.Table.Name], batch, ct);
            var settings = await SettingsAsync(sub.ProjectId, sub.View.Table.Name, ct);
            foreach (var c in changes)
            {
                after = c.Id;
                if (settings is not null && sub.View.FrameFor(c, settings) is { } frame) yield return frame;
            }
            if (changes.Count < batch) yield break;
        }
    }

    private async Task<(long LastId, long PrunedThrough)> StreamStateAsync(string projectId, CancellationToken ct)
    {
        await using var cmd = platform.CreateCommand("SELECT last_id, pruned_through FROM dbstudio_realtime.streams WHERE schema_name = $1");
        cmd.Parameters.Add(new() { Value = ProjectNaming.Schema(projectId) });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetInt64(0), r.GetInt64(1)) : (0, 0);
    }

    private async Task<ProjectFeed> FeedAsync(string projectId, CancellationToken ct)
    {
        if (_feeds.TryGetValue(projectId, out var feed)) return feed;
        await _feedCreation.WaitAsync(ct);
        try
        {
            if (_feeds.TryGetValue(projectId, out feed)) return feed;
            var (lastId, _) = await StreamStateAsync(projectId, ct);
            feed = new ProjectFeed(this, projectId, lastId);
            _feeds[projectId] = feed;
            return feed;
        }
        finally { _feedCreation.Release(); }
    }

    private async Task<AccessSettings?> SettingsAsync(string projectId, string table, CancellationToken ct)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        return info is null ? null : await access.EnsureAsync(projectId, info, ct);
    }

    private async Task<List<Change>> ReadAsync(string where, object[] args, int limit, CancellationToken ct)
    {
        var list = new List<Change>();
        await using var cmd = platform.CreateCommand(
            ChangeColumns + where + $" ORDER BY id LIMIT {limit}");
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) list.Add(ToChange(r));
        return list;
    }

    // ---- the listener -------------------------------------------------------------------------------------

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        _ = PruneLoopAsync(stop);
        _ = HeartbeatLoopAsync(stop);
        // Notification → fetch → hand-out runs on a thread of its own with synchronous I/O: under load, a change
        // then never waits in the thread pool's queue behind the subscribers' writes of the previous one.
        var done = new TaskCompletionSource();
        var thread = new Thread(() =>
        {
            try { ListenLoop(stop); }
            finally { done.SetResult(); }
        }) { IsBackground = true, Name = "dbstudio-change-listener" };
        thread.Start();
        await done.Task;
    }

    private void ListenLoop(CancellationToken stop)
    {
        var pending = new HashSet<string>();
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var listen = platform.OpenConnection();
                using var fetch = platform.OpenConnection();
                listen.Notification += (_, e) =>
                {
                    if (e.Channel == Platform.PlatformSignals.Channel) signals.Raise(e.Payload); // cache invalidation
                    else if (e.Payload.StartsWith("proj_", StringComparison.Ordinal)) pending.Add(e.Payload[5..]);
                };
                using (var cmd = new NpgsqlCommand($"LISTEN {ChangeCapture.Channel}; LISTEN {Platform.PlatformSignals.Channel}", listen))
                    cmd.ExecuteNonQuery();
                Listening = true;
                var lastSweep = 0L; // whatever was committed while not listening is in the log: every feed catches up
                while (!stop.IsCancellationRequested)
                {
                    // Now and then every feed looks at the log, so a project whose notification got lost still catches up.
                    if (Environment.TickCount64 - lastSweep > 5000)
                    {
                        pending.UnionWith(_feeds.Keys);
                        lastSweep = Environment.TickCount64;
                    }
                    foreach (var project in pending.ToList())
                    {
                        pending.Remove(project);
                        if (_feeds.TryGetValue(project, out var feed)) feed.Dispatch(fetch);
                    }
                    listen.Wait(pending.Count > 0 ? 1 : 1000); // ms; notifications arrive through the handler above
                }
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                if (Listening) log.LogWarning("Change listener lost its connection ({Message}); reconnecting", e.Message);
                Listening = false;
                stop.WaitHandle.WaitOne(500);
            }
            catch (Exception) { break; }
        }
        Listening = false;
    }

    /// <summary>Gives every subscriber idle for the heartbeat interval a heartbeat frame.</summary>
    private async Task HeartbeatLoopAsync(CancellationToken stop)
    {
        var interval = Opt.Heartbeat;
        var tick = TimeSpan.FromMilliseconds(Math.Clamp(interval.TotalMilliseconds / 4, 100, 5000));
        using var timer = new PeriodicTimer(tick);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                // A tick early rather than late: no stream stays silent longer than the interval.
                var idleSince = Environment.TickCount64 - (long)(interval - tick).TotalMilliseconds;
                foreach (var feed in _feeds.Values)
                    foreach (var sub in feed.Snapshot())
                        if (sub.LastActivity <= idleSince) sub.Beat();
            }
        }
        catch (OperationCanceledException) { }
    }

    private async Task PruneLoopAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await PruneAsync(stop);
                await Task.Delay(Opt.PruneInterval, stop);
            }
            catch (OperationCanceledException) { break; }
            catch (Exception e)
            {
                log.LogWarning("Pruning the change log failed: {Message}", e.Message);
                try { await Task.Delay(Opt.PruneInterval, stop); } catch (OperationCanceledException) { break; }
            }
        }
    }

    /// <summary>Drops changes older than the retention and records, per project, how far the log has been cut.</summary>
    public async Task PruneAsync(CancellationToken ct = default)
    {
        await using var cmd = platform.CreateCommand("""
            WITH gone AS (DELETE FROM dbstudio_realtime.changes WHERE committed_at < now() - $1 RETURNING schema_name, id)
            UPDATE dbstudio_realtime.streams s SET pruned_through = greatest(s.pruned_through, g.max_id)
            FROM (SELECT schema_name, max(id) AS max_id FROM gone GROUP BY schema_name) g WHERE s.schema_name = g.schema_name
            """);
        cmd.Parameters.Add(new() { Value = Opt.Retention });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>One project's subscribers, and how far the log has been handed to them (<see cref="Cursor"/>).</summary>
    private sealed class ProjectFeed(ChangeHub hub, string projectId, long cursor)
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<string, List<Subscription>> _byTable = [];
        private int _count;

        /// <summary>The id up to which changes have been handed to subscribers.</summary>
        public long Cursor { get; private set; } = cursor;
        public int Count => _count;

        public void Add(Subscription s)
        {
            lock (_lock)
            {
                if (!_byTable.TryGetValue(s.View.Table.Name, out var list)) _byTable[s.View.Table.Name] = list = [];
                list.Add(s);
                _count++;
            }
        }

        public void Remove(Subscription s)
        {
            lock (_lock)
            {
                if (_byTable.TryGetValue(s.View.Table.Name, out var list) && list.Remove(s)) _count--;
                if (list is { Count: 0 }) _byTable.Remove(s.View.Table.Name);
            }
        }

        public Subscription[] Snapshot()
        {
            lock (_lock) return [.. _byTable.Values.SelectMany(l => l)];
        }

        /// <summary>Reads the log after <see cref="Cursor"/> and hands each change to the subscribers who may see it (listener thread).</summary>
        public void Dispatch(NpgsqlConnection conn)
        {
            const int batch = 1000;
            var schema = ProjectNaming.Schema(projectId);
            try
            {
                if (_count == 0)
                {
                    // Nobody listens here: just keep up with the log's end.
                    using var cmd = new NpgsqlCommand("SELECT last_id FROM dbstudio_realtime.streams WHERE schema_name = $1", conn);
                    cmd.Parameters.Add(new() { Value = schema });
                    if (cmd.ExecuteScalar() is long last) Cursor = Math.Max(Cursor, last);
                    return;
                }
                List<Change> changes;
                do
                {
                    changes = Read(conn, schema, Cursor, batch);
                    foreach (var group in changes.GroupBy(c => c.Table))
                    {
                        Subscription[] subs;
                        lock (_lock) subs = _byTable.TryGetValue(group.Key, out var l) ? [.. l] : [];
                        if (subs.Length == 0) continue;
                        // Cached after the first use of the table: this does not wait on the database.
                        var settings = hub.SettingsAsync(projectId, group.Key, CancellationToken.None).GetAwaiter().GetResult();
                        if (settings is null) continue;
                        foreach (var c in group)
                        {
                            DispatchDelay.Record((DateTimeOffset.UtcNow - c.CommittedAt).TotalMilliseconds);
                            foreach (var s in subs)
                                if (s.View.FrameFor(c, settings) is { } frame) s.Offer(frame);
                        }
                    }
                    if (changes.Count > 0) Cursor = changes[^1].Id;
                } while (changes.Count == batch);
            }
            catch (PostgresException e)
            {
                hub.Log.LogWarning("Reading the change log of project {Project} failed: {Message}", projectId, e.MessageText);
            }
        }

        private static List<Change> Read(NpgsqlConnection conn, string schema, long after, int limit)
        {
            var list = new List<Change>();
            using var cmd = new NpgsqlCommand(
                ChangeColumns + $"WHERE schema_name = $1 AND id > $2 ORDER BY id LIMIT {limit}", conn);
            cmd.Parameters.Add(new() { Value = schema });
            cmd.Parameters.Add(new() { Value = after });
            using var r = cmd.ExecuteReader();
            while (r.Read()) list.Add(ToChange(r));
            return list;
        }
    }

    // OpenTelemetry-ready metrics (System.Diagnostics.Metrics): how long after its commit a change is handed out, and
    // how many subscribers were dropped for falling behind.
    public const string MeterName = "DbStudio.Streams";
    private static readonly System.Diagnostics.Metrics.Meter Meter = new(MeterName);
    public static readonly System.Diagnostics.Metrics.Histogram<double> DispatchDelay =
        Meter.CreateHistogram<double>("dbstudio.stream.dispatch_delay", "ms", "Commit to hand-out to the stream's subscribers");
    internal static readonly System.Diagnostics.Metrics.Counter<long> Dropped =
        Meter.CreateCounter<long>("dbstudio.stream.dropped", "{subscriber}", "Subscribers dropped for falling behind");

    /// <summary>The log's columns in the order <see cref="ToChange"/> reads them.</summary>
    private const string ChangeColumns =
        "SELECT id, schema_name, table_name, op, record::text, old_record::text, committed_at FROM dbstudio_realtime.changes ";

    private static Change ToChange(NpgsqlDataReader r) =>
        new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetChar(3),
            r.IsDBNull(4) ? null : JsonSerializer.Deserialize<JsonElement>(r.GetString(4)),
            r.IsDBNull(5) ? null : JsonSerializer.Deserialize<JsonElement>(r.GetString(5)),
            r.GetFieldValue<DateTimeOffset>(6));
}
