// The live row stream's dispatcher (DESIGN §6). Subscribers are kept per project and table (by OID). When the change
// log moves on (a notification through PlatformListener, or at once after a write through this instance), the
// project's pump reads the new changes, asks PostgreSQL what each audience — an identity and its filters — may see
// of them (StreamVisibility, on the project's REST logins) and hands the frames to the fan-out. Pumps are per project
// and asynchronous: one project's slow policies never hold up another's events, and nothing blocks a thread.
// Every subscriber starts with a replay from the log (resume), which passes the same check as live changes; ids are
// bound to the identity and table (StreamIds). Open streams are checked against their credential twice a second:
// logout, expiry, a role change, a deleted user, key rotation and project deletion end them with a revoked event.
using System.Collections.Concurrent;
using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DbStudio.Core.Auth;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Streams;

public sealed class ChangeHub(ChangeLog changeLog, StreamVisibility visibility, StreamIds ids, Credentials credentials,
    IOptions<DbStudioOptions> options, TimeProvider clock, ILogger<ChangeHub> log) : BackgroundService, ICommitObserver
{
    private StreamOptions Opt => options.Value.Streams;
    private readonly ConcurrentDictionary<string, ProjectFeed> _feeds = new();
    private readonly SemaphoreSlim _feedCreation = new(1, 1);
    private readonly FanOut _fanOut = new(clock);
    private readonly SemaphoreSlim _sweep = new(0, 1);

    public int SubscriberCount => _feeds.Values.Sum(f => f.Count);

    public static readonly StreamFrame HeartbeatFrame = new(StreamFrame.HeartbeatId, ": heartbeat\n\n"u8.ToArray());

    /// <summary>
    /// The change id an event id given to <paramref name="identity"/> on <paramref name="table"/> stands for; null when
    /// it is not one (made up, or given to another credential or table).
    /// </summary>
    public async Task<long?> ResumePointAsync(string projectId, TableInfo table, StreamIdentity identity, string eventId, CancellationToken ct)
    {
        var key = await ids.KeyAsync(projectId, ct);
        if (StreamIds.Verify(key, table.Oid, identity, eventId) is { } change) return change;
        // Given out before the project moved to another server, where the table has another OID.
        foreach (var old in await ids.PreviousOidsAsync(projectId, table.Oid, ct))
            if (StreamIds.Verify(key, old, identity, eventId) is { } moved) return moved;
        return null;
    }

    /// <summary>
    /// Subscribes an audience to a table. With <paramref name="resumeAfter"/> (a verified resume point) the stream
    /// continues after it, or is marked Reset when that part of the log was pruned; without, it starts now.
    /// </summary>
    public async Task<Subscription> SubscribeAsync(string projectId, TableInfo table, Audience audience, StreamCredential? credential,
        long? resumeAfter, CancellationToken ct = default)
    {
        await changeLog.EnsureStreamAsync(projectId, ct);
        var feed = await FeedAsync(projectId, ct);
        var (lastId, prunedThrough) = await changeLog.StateAsync(projectId, ct);
        var reset = resumeAfter is long l && (l < prunedThrough || l > lastId);
        var start = resumeAfter is long from && !reset ? from : lastId;
        var sub = new Subscription(projectId, table, audience.Identity, audience, credential, Opt.QueueCapacity, start, s =>
        {
            feed.Remove(s);
            Telemetry.StreamSubscribers.Add(-1);
        }) { Reset = reset, Resumed = resumeAfter is not null && !reset };
        feed.Add(sub, lastId);
        Telemetry.StreamSubscribers.Add(1);
        Activity.Current?.SetTag("dbstudio.stream.start_after", start).SetTag("dbstudio.stream.reset", reset);
        return sub;
    }

    /// <summary>The frame a reset subscriber gets first: the log no longer holds what it asked for.</summary>
    public async Task<byte[]> ResetFrameAsync(Subscription sub, CancellationToken ct)
    {
        var id = StreamIds.Format(await ids.KeyAsync(sub.ProjectId, ct), sub.Table.Oid, sub.Identity, sub.StartAfter);
        return Encoding.UTF8.GetBytes($"id: {id}\nevent: reset\ndata: {{\"reason\":\"The Last-Event-ID is outside the retained change log; reload the table\"," +
                                      $"\"last_event_id\":\"{id}\"}}\n\n");
    }

    /// <summary>
    /// Everything the subscription should receive, in id order and each id once: the replay after
    /// <see cref="Subscription.StartAfter"/>, then live frames, with heartbeats when idle; ends when it is dropped or revoked
    /// (in-process readers: check <see cref="Subscription.Dropped"/>).
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
        var queue = new QueueSink(sub.Capacity);
        sub.Attach(queue, last);
        while (await queue.Frames.WaitToReadAsync(ct))
            while (queue.Frames.TryRead(out var f)) yield return f;
    }

    /// <summary>The log's changes of the subscription's table after <paramref name="after"/>, as its frames, checked as live ones are.</summary>
    public async IAsyncEnumerable<StreamFrame> ReplayAsync(Subscription sub, long after,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        const int batch = 500;
        // From the start of the last sent change's transaction, so that it is netted whole as it was when sent; what
        // was sent already (up to that change) is not sent again.
        var sent = after;
        // (A stream that starts now starts between two transactions: nothing to back up for.)
        if (sub.Resumed && after == sub.StartAfter) after = await changeLog.TransactionStartAsync(sub.ProjectId, after, ct);
        while (true)
        {
            var (changes, more) = await changeLog.ReadTableAsync(sub.ProjectId, sub.Table.Oid, after, batch, ct);
            if (changes.Count == 0) yield break;
            var seen = await visibility.EvaluateAsync(sub.ProjectId, sub.Table, changes, [sub.Audience], ct);
            var key = await ids.KeyAsync(sub.ProjectId, ct);
            foreach (var v in seen[sub.Audience])
                if (v.Change.Id > sent) yield return Frame(v, sub.Table, sub.Identity, key);
            after = changes[^1].Id;
            if (!more) yield break;
        }
    }

    /// <summary>A write through this instance committed: read the project's log now.</summary>
    public void Committed(string projectId)
    {
        if (_feeds.TryGetValue(projectId, out var feed) && feed.Count > 0) Pump(feed);
    }

    /// <summary>The log moved on somewhere (a notification names no project): every project with subscribers looks.</summary>
    public void Wake()
    {
        Volatile.Write(ref _wokenAt, Stopwatch.GetTimestamp());
        if (_sweep.CurrentCount == 0) try { _sweep.Release(); } catch (SemaphoreFullException) { }
    }

    /// <summary>When the latest notification arrived (Stopwatch ticks): a feed that began a read after it has seen its change.</summary>
    private long _wokenAt;

    /// <summary>Ends every open stream of a project (it was deleted).</summary>
    public void RevokeProject(string projectId)
    {
        if (_feeds.TryRemove(projectId, out var feed))
            foreach (var s in feed.Snapshot()) s.Revoke();
        ids.Forget(projectId);
    }

    /// <summary>
    /// Ends every open stream of a project that moved to another server (its tables have new OIDs there) as a dropped
    /// subscriber's: the client reconnects with Last-Event-ID and resumes there, with nothing missed.
    /// </summary>
    public void ReleaseProject(string projectId)
    {
        if (_feeds.TryRemove(projectId, out var feed))
            foreach (var s in feed.Snapshot()) s.Release();
    }

    // ---- frames -------------------------------------------------------------------------------------------

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>id/event/data lines of DESIGN §6 for one audience: only what it may read of the row.</summary>
    internal static StreamFrame Frame(VisibleChange v, TableInfo table, StreamIdentity identity, byte[] key)
    {
        var type = v.Kind switch { ChangeKind.Insert => "INSERT", ChangeKind.Update => "UPDATE", _ => "DELETE" };
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(Encoding.UTF8.GetBytes($"id: {StreamIds.Format(key, table.Oid, identity, v.Change.Id)}\nevent: {type.ToLowerInvariant()}\ndata: "));
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("type", type);
            w.WriteString("table", table.Name);
            w.WriteString("schema", table.Schema);
            w.WritePropertyName("record");
            if (v.Record is { } rec) w.WriteRawValue(rec, skipInputValidation: true); else w.WriteNullValue();
            w.WritePropertyName("old_record");
            if (v.OldRecord is { } old) w.WriteRawValue(old, skipInputValidation: true); else w.WriteNullValue();
            w.WriteString("commit_timestamp", v.Change.CommittedAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'"));
            w.WriteEndObject();
        }
        buffer.Write("\n\n"u8);
        return new StreamFrame(v.Change.Id, buffer.WrittenSpan.ToArray(), new StreamEvent(v.Kind, v.Record, v.OldRecord) { CommittedAt = v.Change.CommittedAt });
    }

    // ---- dispatch ------------------------------------------------------------------------------------------

    private async Task<ProjectFeed> FeedAsync(string projectId, CancellationToken ct)
    {
        if (_feeds.TryGetValue(projectId, out var feed)) return feed;
        await _feedCreation.WaitAsync(ct);
        try
        {
            if (_feeds.TryGetValue(projectId, out feed)) return feed;
            var (lastId, _) = await changeLog.StateAsync(projectId, ct);
            return _feeds[projectId] = new ProjectFeed(projectId, lastId);
        }
        finally { _feedCreation.Release(); }
    }

    private void Pump(ProjectFeed feed)
    {
        Volatile.Write(ref feed.Again, 1);
        feed.Signal();
        if (Interlocked.CompareExchange(ref feed.Pumping, 1, 0) == 0) _ = PumpAsync(feed);
    }

    private async Task PumpAsync(ProjectFeed feed)
    {
        await Task.Yield(); // off the caller's thread (the listener's, or a request's)
        while (true)
        {
            var failed = false;
            try { await DispatchAsync(feed, CancellationToken.None); }
            catch (Exception e)
            {
                // Nothing after the cursor was handed out: it is read again shortly, from the same cursor.
                log.LogWarning("Reading the change log of project {Project} failed: {Message}", feed.ProjectId, e.Message);
                failed = true;
            }
            Volatile.Write(ref feed.Pumping, 0);
            if (failed)
            {
                _ = Task.Delay(TimeSpan.FromMilliseconds(250), clock).ContinueWith(_ => Pump(feed), TaskScheduler.Default);
                return;
            }
            if (Volatile.Read(ref feed.Again) == 0 || Interlocked.CompareExchange(ref feed.Pumping, 1, 0) != 0) return;
        }
    }

    /// <summary>Batches whose visibility is being decided at once: the next read overlaps the last one's decision.</summary>
    private const int InFlight = 2;

    /// <summary>
    /// Hands the log's changes after the feed's cursor to the subscribers who may see them. Pipelined: while PostgreSQL
    /// decides what a batch shows to whom, the changes committed meanwhile are read; batches are handed out strictly in
    /// order, and the cursor moves only past what was handed out (a failure re-reads from there; ids already delivered
    /// are skipped by each subscription).
    /// </summary>
    private async Task DispatchAsync(ProjectFeed feed, CancellationToken ct)
    {
        const int batch = 1000;
        var handing = new Queue<Task>();
        var readFrom = feed.Cursor;
        try
        {
            while (true)
            {
                Volatile.Write(ref feed.Again, 0);
                while (handing.Count >= InFlight) await handing.Dequeue();
                feed.ReadStarted = Stopwatch.GetTimestamp();
                var (changes, more) = await changeLog.ReadAsync(feed.ProjectId, readFrom, batch, ct);
                if (changes.Count == 0) break;
                var now = clock.GetUtcNow();
                foreach (var c in changes) ReadDelay.Record((now - c.CommittedAt).TotalMilliseconds);
                readFrom = changes[^1].Id;
                var previous = handing.Count > 0 ? handing.Last() : Task.CompletedTask;
                handing.Enqueue(HandOutAsync(feed, changes, previous, ct));
                if (more) continue;
                // Read again as soon as something new commits; done when nothing did by the time the batch is out.
                var again = feed.Armed();
                if (Volatile.Read(ref feed.Again) == 0 && await Task.WhenAny(handing.Last(), again) != again) break;
            }
            while (handing.Count > 0) await handing.Dequeue();
        }
        finally
        {
            // Leaving on an error: let batches in flight end before another pump starts from the cursor.
            foreach (var t in handing) try { await t; } catch { /* the first failure is the one reported */ }
        }
    }

    /// <summary>Decides what each audience sees of one batch, then — once the batch before it is out — hands it out.</summary>
    private async Task HandOutAsync(ProjectFeed feed, List<Change> changes, Task previous, CancellationToken ct)
    {
        // A change reaches its table's subscribers and, for a partition, those of every table above it.
        var byTable = new Dictionary<uint, List<Change>>();
        foreach (var c in changes)
        {
            if (feed.Has(c.TableOid)) (byTable.TryGetValue(c.TableOid, out var l) ? l : byTable[c.TableOid] = []).Add(c);
            foreach (var a in c.Ancestors)
                if (feed.Has(a)) (byTable.TryGetValue(a, out var l) ? l : byTable[a] = []).Add(c);
        }
        var posts = new List<(StreamFrame[] Frames, List<Subscription> To)>();
        if (byTable.Count > 0)
        {
            var key = await ids.KeyAsync(feed.ProjectId, ct);
            var runs = byTable.Select(async kv =>
            {
                var groups = feed.AudiencesOf(kv.Key);
                if (groups.Length == 0) return [];
                var table = groups[0].To[0].Table;
                var seen = await visibility.EvaluateAsync(feed.ProjectId, table, kv.Value, [.. groups.Select(g => g.Audience)], ct);
                var ready = new List<(StreamFrame[], List<Subscription>)>();
                foreach (var (audience, to) in groups)
                    if (seen.TryGetValue(audience, out var visible) && visible.Count > 0)
                        ready.Add(([.. visible.Select(v => Frame(v, table, audience.Identity, key))], to));
                return ready;
            }).ToList();
            foreach (var run in runs) posts.AddRange(await run);
        }
        await previous; // strictly in order (a failed batch before this one fails it too: nothing is handed out past a gap)
        foreach (var (frames, to) in posts) _fanOut.Post(frames, to);
        var decided = clock.GetUtcNow();
        foreach (var c in changes) DispatchDelay.Record((decided - c.CommittedAt).TotalMilliseconds);
        feed.Cursor = changes[^1].Id;
    }

    // ---- background work -----------------------------------------------------------------------------------

    protected override Task ExecuteAsync(CancellationToken stop) =>
        Task.WhenAll(SweepLoopAsync(stop), HeartbeatLoopAsync(stop), PruneLoopAsync(stop), CredentialLoopAsync(stop));

    /// <summary>On a notification (and every few seconds, for one that got lost): every project whose log moved on pumps.</summary>
    private async Task SweepLoopAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var woken = await _sweep.WaitAsync(TimeSpan.FromSeconds(5), stop);
                var notified = Volatile.Read(ref _wokenAt);
                // A feed that began reading after the latest notification has seen that change (and those before it),
                // and one with a read still to come (a local write asked for it) will: neither needs the log's state.
                var active = _feeds.Values.Where(f => f.Count > 0 && !(woken && (f.ReadStarted > notified || Volatile.Read(ref f.Again) == 1))).ToList();
                if (active.Count == 0) continue;
                var last = await changeLog.LastIdsAsync([.. active.Select(f => f.ProjectId)], stop);
                foreach (var f in active)
                    if (last.TryGetValue(f.ProjectId, out var id) && id > f.Cursor) Pump(f);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { break; }
            catch (Exception e)
            {
                log.LogWarning("Looking at the change log failed ({Message}); trying again", e.Message);
                try { await Task.Delay(TimeSpan.FromMilliseconds(500), clock, stop); } catch (OperationCanceledException) { break; }
            }
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
                        if (Volatile.Read(ref sub.LastActivity) <= idleSince) sub.Beat(HeartbeatFrame);
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Looks at every open stream's credential again: one that stopped working, or now means another identity, ends it.</summary>
    private async Task CredentialLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(Opt.CredentialCheck, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try { await CheckCredentialsAsync(stop); }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    log.LogWarning("Checking open streams' credentials failed: {Message}", e.Message);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>One pass of <see cref="CredentialLoopAsync"/> (tests call it to not wait for the timer).</summary>
    public async Task CheckCredentialsAsync(CancellationToken ct = default)
    {
        foreach (var feed in _feeds.Values)
            foreach (var group in feed.Snapshot().Where(s => s.Credential is not null).GroupBy(s => s.Credential!))
            {
                var caller = await credentials.ResolveAsync(feed.ProjectId, group.Key.ApiKey, group.Key.Bearer, ct);
                var now = caller is null ? null : StreamIdentity.Of(caller);
                foreach (var s in group)
                    if (now != s.Identity) s.Revoke();
            }
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
    public Task PruneAsync(CancellationToken ct = default) => changeLog.PruneAsync(Opt.Retention, ct);

    /// <summary>One project's subscribers by table OID, and how far the log has been handed to them (<see cref="Cursor"/>).</summary>
    private sealed class ProjectFeed(string projectId, long cursor)
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<uint, Subscription[]> _byTable = [];
        /// <summary>A table's subscribers by audience, made when first asked for after its subscribers changed (not
        /// for every batch: with a thousand subscribers, grouping them was a thousand hash lookups a batch).</summary>
        private readonly Dictionary<uint, (Audience Audience, List<Subscription> To)[]> _audiences = [];
        private int _count;

        public string ProjectId { get; } = projectId;
        /// <summary>The id up to which changes have been handed to subscribers.</summary>
        public long Cursor { get; set; } = cursor;
        public int Count => Volatile.Read(ref _count);
        public int Pumping, Again;
        /// <summary>When the latest read of the log began (Stopwatch ticks).</summary>
        public long ReadStarted;
        private TaskCompletionSource? _again;

        /// <summary>A task that completes at the next <see cref="Signal"/> (something new committed).</summary>
        public Task Armed()
        {
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _again, tcs);
            return tcs.Task;
        }

        public void Signal() => Interlocked.Exchange(ref _again, null)?.TrySetResult();

        public void Add(Subscription s, long lastId)
        {
            lock (_lock)
            {
                // Nobody listened: the cursor may be far behind; the newcomer starts at the log's end (or its replay).
                if (_count == 0) Cursor = Math.Max(Cursor, lastId);
                _byTable[s.Table.Oid] = _byTable.TryGetValue(s.Table.Oid, out var list) ? [.. list, s] : [s];
                _audiences.Remove(s.Table.Oid);
                _count++;
            }
        }

        public void Remove(Subscription s)
        {
            lock (_lock)
            {
                if (!_byTable.TryGetValue(s.Table.Oid, out var list) || Array.IndexOf(list, s) < 0) return;
                var rest = list.Where(x => !ReferenceEquals(x, s)).ToArray();
                if (rest.Length == 0) _byTable.Remove(s.Table.Oid); else _byTable[s.Table.Oid] = rest;
                _audiences.Remove(s.Table.Oid);
                _count--;
            }
        }

        public bool Has(uint tableOid)
        {
            lock (_lock) return _byTable.ContainsKey(tableOid);
        }

        /// <summary>The table's subscribers grouped by audience (each group gets the same frames); never changed once
        /// handed out.</summary>
        public (Audience Audience, List<Subscription> To)[] AudiencesOf(uint tableOid)
        {
            lock (_lock)
            {
                if (_audiences.TryGetValue(tableOid, out var groups)) return groups;
                if (!_byTable.TryGetValue(tableOid, out var subs)) return [];
                return _audiences[tableOid] = [.. subs.GroupBy(x => x.Audience).Select(g => (g.Key, g.ToList()))];
            }
        }

        public Subscription[] Snapshot()
        {
            lock (_lock) return [.. _byTable.Values.SelectMany(l => l)];
        }
    }

    // OpenTelemetry-ready metrics (System.Diagnostics.Metrics): how long after its commit a change is handed out, and
    // how many subscribers were dropped for falling behind.
    public const string MeterName = "DbStudio.Streams";
    private static readonly Meter Meter = new(MeterName);
    public static readonly Histogram<double> ReadDelay =
        Meter.CreateHistogram<double>("dbstudio.stream.read_delay", "ms", "Commit to read from the change log");
    public static readonly Histogram<double> DispatchDelay =
        Meter.CreateHistogram<double>("dbstudio.stream.dispatch_delay", "ms", "Commit to hand-out to the stream's subscribers (visibility decided)");
    public static readonly Histogram<double> DeliveryDelay =
        Meter.CreateHistogram<double>("dbstudio.stream.delivery_delay", "ms", "Commit to written to the subscribers' connections (per fan-out batch)");
    internal static readonly Counter<long> DroppedCounter =
        Meter.CreateCounter<long>("dbstudio.stream.dropped", "{subscriber}", "Subscribers dropped for falling behind");
}
