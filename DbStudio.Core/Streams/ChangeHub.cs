// Fan-out of the change log (DESIGN §6): one LISTEN connection per app instance, one reader per project with
// subscribers, and fan-out partitions (thread-pool work items, four per core) that hand each change to their share of
// the subscribers' sinks — for an SSE client, the response itself (no queue and no thread-pool hop per client and
// event; several changes per write under load). A subscriber whose sink cannot keep up (bounded backlog) is dropped (it resumes from the log with
// Last-Event-ID), so a slow client never slows the others nor grows memory without bound. Every subscriber starts
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

/// <summary>
/// Where a subscription's live frames go once it has caught up: the SSE writer itself (so a change reaches a client
/// without a queue and a thread-pool hop per subscriber), or a bounded queue for in-process readers (the Data tab).
/// </summary>
public interface IStreamSink
{
    /// <summary>
    /// Takes one frame, in id order, on the hub's thread and under the subscription's lock: must not block. False when
    /// the sink can hold no more (its client fell behind): the subscriber is then dropped.
    /// </summary>
    bool Deliver(in StreamFrame frame);

    /// <summary>Sends what <see cref="Deliver"/> took since the last flush (one flush for a batch of frames).</summary>
    void Flush();

    /// <summary>The subscription ends: dropped for falling behind, or closed. Called at most once by the hub.</summary>
    void Close(bool dropped);
}

/// <summary>The sink of in-process readers: a bounded queue (capacity = the subscription's).</summary>
public sealed class QueueSink(int capacity) : IStreamSink
{
    private readonly Channel<StreamFrame> _queue = Channel.CreateBounded<StreamFrame>(new BoundedChannelOptions(capacity)
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    public ChannelReader<StreamFrame> Frames => _queue.Reader;
    public bool Deliver(in StreamFrame frame) => _queue.Writer.TryWrite(frame);
    public void Flush() { }
    public void Close(bool dropped) => _queue.Writer.TryComplete();
}

/// <summary>A live subscription; dispose it to leave.</summary>
public sealed class Subscription : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Action<Subscription> _leave;
    /// <summary>Frames offered before a sink is attached (while the replay runs); bounded by <see cref="Capacity"/>.</summary>
    private Queue<StreamFrame>? _early;
    private IStreamSink? _sink;
    /// <summary>The last change id handed to the sink (the replay's included): older ids are not handed out again.</summary>
    private long _last;
    private bool _closed;

    private static int _partitions;

    internal Subscription(string projectId, ChangeView view, int capacity, long startAfter, Action<Subscription> leave)
    {
        Partition = (int)((uint)Interlocked.Increment(ref _partitions) % (uint)ChangeHub.FanOutPartitions);
        ProjectId = projectId;
        View = view;
        Capacity = capacity;
        StartAfter = startAfter;
        _last = startAfter;
        _leave = leave;
    }

    public string ProjectId { get; }
    public ChangeView View { get; }
    /// <summary>Which fan-out partition hands this subscriber its frames (always the same one: they stay in order).</summary>
    internal int Partition { get; }
    /// <summary>Frames one subscriber may have waiting before it counts as fallen behind.</summary>
    public int Capacity { get; }
    /// <summary>The last change id before this subscription's stream begins (replay starts after it).</summary>
    public long StartAfter { get; }
    /// <summary>Set when the requested Last-Event-ID was outside the retained log: the client must reload.</summary>
    public bool Reset { get; init; }
    /// <summary>True once the subscriber fell behind and was dropped.</summary>
    public bool Dropped { get; private set; }

    /// <summary>When something was last handed to this subscriber (Environment.TickCount64), for heartbeats.</summary>
    internal long LastActivity = Environment.TickCount64;

    /// <summary>
    /// Live frames go to <paramref name="sink"/> from now on, starting with those that came during the replay, skipping
    /// ids up to <paramref name="lastDelivered"/> (the replay's last). A dropped subscription closes the sink at once.
    /// </summary>
    public void Attach(IStreamSink sink, long lastDelivered)
    {
        lock (_lock)
        {
            if (_closed) return;
            if (Dropped) { sink.Close(dropped: true); return; }
            _sink = sink;
            _last = Math.Max(_last, lastDelivered);
            var early = _early;
            _early = null;
            if (early is null) return;
            foreach (var f in early)
                if (!DeliverLocked(f)) return;
            _sink?.Flush();
        }
    }

    /// <summary>A heartbeat for an attached, idle subscriber.</summary>
    internal void Beat()
    {
        lock (_lock)
        {
            if (_sink is null || Dropped || _closed) return;
            LastActivity = Environment.TickCount64;
            if (DeliverLocked(ChangeHub.HeartbeatFrame)) _sink?.Flush();
        }
    }

    /// <summary>Hands one frame out (and sends it at once unless <paramref name="flush"/> is false: then <see cref="Flush"/>).</summary>
    public void Offer(StreamFrame frame, bool flush = true)
    {
        lock (_lock)
        {
            if (Dropped || _closed) return;
            LastActivity = Environment.TickCount64;
            if (_sink is not null)
            {
                if (DeliverLocked(frame) && flush) _sink?.Flush();
                return;
            }
            (_early ??= new Queue<StreamFrame>()).Enqueue(frame);
            if (_early.Count > Capacity) DropLocked();
        }
    }

    /// <summary>Sends the frames offered with flush: false.</summary>
    public void Flush()
    {
        lock (_lock) _sink?.Flush();
    }

    private bool DeliverLocked(in StreamFrame frame)
    {
        if (frame.Id >= 0)
        {
            if (frame.Id <= _last) return true; // already in the replay
            _last = frame.Id;
        }
        if (_sink!.Deliver(frame)) return true;
        DropLocked();
        return false;
    }

    private void DropLocked()
    {
        Dropped = true;
        _early = null;
        ChangeHub.Dropped.Add(1);
        _sink?.Close(dropped: true);
        _sink = null;
    }

    private int _left;

    public ValueTask DisposeAsync()
    {
        IStreamSink? sink;
        lock (_lock)
        {
            _closed = true;
            _early = null;
            sink = _sink;
            _sink = null;
        }
        sink?.Close(dropped: false);
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
        // Live frames, those that came during the replay first (the subscription skips what the replay had). One
        // shared timer sends heartbeats (HeartbeatLoopAsync): waiting here needs no timer of its own.
        var queue = new QueueSink(sub.Capacity);
        sub.Attach(queue, last);
        while (await queue.Frames.WaitToReadAsync(ct))
            while (queue.Frames.TryRead(out var f)) yield return f;
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
        await using var cmd = platform.CreateCommand(
            $"SELECT {ChangeCapture.LastIdSql}, s.pruned_through FROM dbstudio_realtime.streams s WHERE s.schema_name = $1");
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

    // ---- fan-out ------------------------------------------------------------------------------------------

    /// <summary>
    /// The subscribers are split into this many partitions (four per core); each partition hands out its changes in
    /// order, one round at a time, as a work item on the thread pool — so the writing of one change to thousands of
    /// subscribers is shared by the cores, a subscriber's frames stay in order (it always belongs to the same
    /// partition), and a thread that the OS pauses holds up only its partition.
    /// </summary>
    internal static readonly int FanOutPartitions = 4 * Math.Max(1, Environment.ProcessorCount);

    private sealed record FanOutWork(Change[] Changes, AccessSettings Settings, List<Subscription> Subscribers);

    private readonly FanOutPartition[] _fanOut = [.. Enumerable.Range(0, FanOutPartitions).Select(_ => new FanOutPartition())];

    private void FanOut(Change[] changes, AccessSettings settings, Subscription[] subs)
    {
        var parts = new List<Subscription>?[FanOutPartitions];
        foreach (var s in subs) (parts[s.Partition] ??= []).Add(s);
        for (var i = 0; i < parts.Length; i++)
            if (parts[i] is { } part) _fanOut[i].Post(new FanOutWork(changes, settings, part));
    }

    /// <summary>One partition's queue, drained by at most one thread-pool thread at a time.</summary>
    private sealed class FanOutPartition : IThreadPoolWorkItem
    {
        // Under load, changes queue here faster than one at a time: then several are written before one flush per
        // subscriber (a socket send carries many events), up to about this many frames per round.
        private const int RoundBudget = 2048;
        private readonly ConcurrentQueue<FanOutWork> _queue = new();
        private readonly HashSet<Subscription> _touched = new(ReferenceEqualityComparer.Instance);
        private int _scheduled;

        public void Post(FanOutWork work)
        {
            _queue.Enqueue(work);
            if (Interlocked.Exchange(ref _scheduled, 1) == 0) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        public void Execute()
        {
            while (true)
            {
                while (_queue.TryDequeue(out var first)) Round(first);
                Volatile.Write(ref _scheduled, 0);
                // Posted after the last look but before the flag was cleared: go on (unless another run took it).
                if (_queue.IsEmpty || Interlocked.Exchange(ref _scheduled, 1) != 0) return;
            }
        }

        private void Round(FanOutWork first)
        {
            if (first.Subscribers.Count * first.Changes.Length >= RoundBudget || _queue.IsEmpty)
            {
                foreach (var s in first.Subscribers)
                {
                    foreach (var c in first.Changes)
                        if (s.View.FrameFor(c, first.Settings) is { } frame) s.Offer(frame, flush: false);
                    s.Flush();
                }
                return;
            }
            var budget = 0;
            var work = first;
            do
            {
                foreach (var s in work.Subscribers)
                    foreach (var c in work.Changes)
                        if (s.View.FrameFor(c, work.Settings) is { } frame)
                        {
                            s.Offer(frame, flush: false);
                            _touched.Add(s);
                        }
                budget += work.Subscribers.Count * work.Changes.Length;
            } while (budget < RoundBudget && _queue.TryDequeue(out work!));
            foreach (var s in _touched) s.Flush(); // one flush per subscriber for the whole round
            _touched.Clear();
        }
    }

    // ---- the listener -------------------------------------------------------------------------------------

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        _ = PruneLoopAsync(stop);
        _ = HeartbeatLoopAsync(stop);
        // Two threads of their own with synchronous I/O: one waits for notifications, the other reads the log and hands
        // changes to the fan-out — woken by a notification, or at once by a write made through this instance (Poke),
        // which then does not wait for PostgreSQL's notification to come round.
        var listening = new TaskCompletionSource();
        var dispatching = new TaskCompletionSource();
        new Thread(() =>
        {
            try { ListenLoop(stop); }
            finally { listening.SetResult(); }
        }) { IsBackground = true, Name = "dbstudio-change-listener" }.Start();
        new Thread(() =>
        {
            try { DispatchLoop(stop); }
            finally { dispatching.SetResult(); }
        }) { IsBackground = true, Name = "dbstudio-change-dispatcher" }.Start();
        await Task.WhenAll(listening.Task, dispatching.Task);
    }

    private readonly ConcurrentQueue<string> _pokes = new();
    private readonly AutoResetEvent _wake = new(false);
    private int _sweep = 1; // whatever was committed while not listening is in the log: every feed catches up

    /// <summary>A change of the project was committed (through this instance): read its log now.</summary>
    public void Poke(string projectId)
    {
        if (!_feeds.ContainsKey(projectId)) return;
        _pokes.Enqueue(projectId);
        _wake.Set();
    }

    private void ListenLoop(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var listen = platform.OpenConnection();
                listen.Notification += (_, e) =>
                {
                    if (e.Channel == Platform.PlatformSignals.Channel) signals.Raise(e.Payload); // cache invalidation
                    else if (e.Payload.StartsWith("proj_", StringComparison.Ordinal)) Poke(e.Payload[5..]);
                };
                using (var cmd = new NpgsqlCommand($"LISTEN {ChangeCapture.Channel}; LISTEN {Platform.PlatformSignals.Channel}", listen))
                    cmd.ExecuteNonQuery();
                Listening = true;
                Volatile.Write(ref _sweep, 1);
                _wake.Set();
                while (!stop.IsCancellationRequested) listen.Wait(1000); // ms; notifications arrive through the handler above
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
        _wake.Set();
    }

    private void DispatchLoop(CancellationToken stop)
    {
        var pending = new HashSet<string>();
        var lastSweep = Environment.TickCount64;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var fetch = platform.OpenConnection();
                while (!stop.IsCancellationRequested)
                {
                    _wake.WaitOne(pending.Count > 0 ? 0 : 1000);
                    while (_pokes.TryDequeue(out var project)) pending.Add(project);
                    // Now and then every feed looks at the log, so a project whose notification got lost still catches up.
                    if (Interlocked.Exchange(ref _sweep, 0) == 1 || Environment.TickCount64 - lastSweep > 5000)
                    {
                        pending.UnionWith(_feeds.Keys);
                        lastSweep = Environment.TickCount64;
                    }
                    foreach (var project in pending.ToList())
                    {
                        pending.Remove(project);
                        if (_feeds.TryGetValue(project, out var feed)) feed.Dispatch(fetch);
                    }
                }
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                log.LogWarning("Change dispatcher lost its connection ({Message}); reconnecting", e.Message);
                Volatile.Write(ref _sweep, 1);
                stop.WaitHandle.WaitOne(500);
            }
            catch (Exception) { break; }
        }
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
                        if (Volatile.Read(ref sub.LastActivity) <= idleSince) sub.Beat();
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
                    using var cmd = new NpgsqlCommand($"SELECT {ChangeCapture.LastIdSql} FROM dbstudio_realtime.streams s WHERE s.schema_name = $1", conn);
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
                        var now = DateTimeOffset.UtcNow;
                        var batchOfTable = group.ToArray();
                        foreach (var c in batchOfTable) DispatchDelay.Record((now - c.CommittedAt).TotalMilliseconds);
                        hub.FanOut(batchOfTable, settings, subs);
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
