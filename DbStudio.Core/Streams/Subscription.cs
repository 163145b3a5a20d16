// One live subscription and where its frames go. A subscription belongs to one table (by OID), one identity (whose
// rights PostgreSQL checks for every change: StreamVisibility) and one set of filters; the hub hands it frames in id
// order, and it passes them to its sink — the SSE response itself, or a bounded queue for in-process readers (the Data
// tab). A sink that cannot keep up gets the subscriber dropped; a credential that stops gets it revoked.
using System.Threading.Channels;
using DbStudio.Core.Rest;
using DbStudio.Core.Catalog;
using DbStudio.Core.Auth;
using DbStudio.Core.Projects;

namespace DbStudio.Core.Streams;

/// <summary>What a change is, as one subscriber sees it (an update that takes a row out of its view is a delete).</summary>
public enum ChangeKind { Insert, Update, Delete }

/// <summary>One change as one subscriber may see it: only the columns its role may read, JSON text.</summary>
public sealed record StreamEvent(ChangeKind Kind, string? Record, string? OldRecord)
{
    /// <summary>When the change committed (the realtime socket's commit_timestamp).</summary>
    public DateTimeOffset CommittedAt { get; init; }
}

/// <summary>
/// One frame for one subscriber: its change id (de-duplication against the replay; negative for control frames), the
/// SSE bytes (shared by every subscriber with the same rights and filters), and the event for in-process readers.
/// </summary>
public readonly record struct StreamFrame(long Id, byte[] Bytes, StreamEvent? Event = null)
{
    public const long HeartbeatId = -1, DroppedId = -2, RevokedId = -3;
}

/// <summary>Whose rights a subscription reads with: the REST login (role) and, for end users, the claims.</summary>
public sealed record StreamIdentity(RestRole Role, Guid? UserId, string? UserRole)
{
    public static StreamIdentity Of(RestCaller caller) => caller.Kind switch
    {
        CallerKind.Anon => new(RestRole.Anon, null, null),
        CallerKind.Admin => new(RestRole.Owner, null, null),
        _ => new(caller.UserRole == Platform.EndUserRoles.Admin ? RestRole.UserAdmin : RestRole.User, caller.UserId, caller.UserRole),
    };

    /// <summary>What an event id is bound to (with the table): ids given to one identity mean nothing to another.</summary>
    public string MacKey => Role switch
    {
        RestRole.Anon => "anon",
        RestRole.Owner => "admin",
        _ => "user:" + UserId,
    };
}

/// <summary>What an SSE client sent to authenticate: looked at again while the stream is open (it may stop working).</summary>
public sealed record StreamCredential(string? ApiKey, string? Bearer);

/// <summary>
/// Where a subscription's live frames go once it has caught up: the SSE writer itself (so a change reaches a client
/// without a queue and a thread-pool hop per subscriber), or a bounded queue for in-process readers (the Data tab).
/// </summary>
public interface IStreamSink
{
    /// <summary>Takes one frame, in id order, under the subscription's lock: must not block. False when the sink can
    /// hold no more (its client fell behind): the subscriber is then dropped.</summary>
    bool Deliver(in StreamFrame frame);

    /// <summary>Sends what <see cref="Deliver"/> took since the last flush (one flush for a batch of frames).</summary>
    void Flush();

    /// <summary>The subscription ends: dropped for falling behind, revoked, or closed. Called at most once.</summary>
    void Close(StreamEnd end);
}

public enum StreamEnd { Closed, Dropped, Revoked }

/// <summary>The sink of in-process readers: a bounded queue (capacity = the subscription's).</summary>
public sealed class QueueSink(int capacity) : IStreamSink
{
    private readonly Channel<StreamFrame> _queue = Channel.CreateBounded<StreamFrame>(new BoundedChannelOptions(capacity)
        { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

    public ChannelReader<StreamFrame> Frames => _queue.Reader;
    public bool Deliver(in StreamFrame frame) => _queue.Writer.TryWrite(frame);
    public void Flush() { }
    public void Close(StreamEnd end) => _queue.Writer.TryComplete();
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
    private int _left;

    private static int _partitions;

    internal Subscription(string projectId, TableInfo table, StreamIdentity identity, Audience audience, StreamCredential? credential,
        int capacity, long startAfter, Action<Subscription> leave)
    {
        Partition = (int)((uint)Interlocked.Increment(ref _partitions) % (uint)FanOut.Partitions);
        ProjectId = projectId;
        Table = table;
        Identity = identity;
        Audience = audience;
        Credential = credential;
        Capacity = capacity;
        StartAfter = startAfter;
        _last = startAfter;
        _leave = leave;
    }

    public string ProjectId { get; }
    public TableInfo Table { get; }
    public StreamIdentity Identity { get; }
    /// <summary>The identity and filters: subscribers with the same audience get the same frames.</summary>
    public Audience Audience { get; }
    /// <summary>What the client authenticated with (null in process): checked again while the stream is open.</summary>
    public StreamCredential? Credential { get; }
    /// <summary>Which fan-out partition hands this subscriber its frames (always the same one: they stay in order).</summary>
    internal int Partition { get; }
    /// <summary>Frames one subscriber may have waiting before it counts as fallen behind.</summary>
    public int Capacity { get; }
    /// <summary>The last change id before this subscription's stream begins (replay starts after it).</summary>
    public long StartAfter { get; }
    /// <summary>Whether it resumes after a change the client was sent (Last-Event-ID), which may be in the middle of a transaction.</summary>
    public bool Resumed { get; init; }
    /// <summary>Set when the requested Last-Event-ID was outside the retained change log: the client must reload.</summary>
    public bool Reset { get; init; }
    public bool Dropped { get; private set; }
    public bool Revoked { get; private set; }

    /// <summary>When something was last handed to this subscriber (Environment.TickCount64), for heartbeats.</summary>
    internal long LastActivity = Environment.TickCount64;

    /// <summary>
    /// Live frames go to <paramref name="sink"/> from now on, starting with those that came during the replay, skipping
    /// ids up to <paramref name="lastDelivered"/> (the replay's last). An ended subscription closes the sink at once.
    /// </summary>
    public void Attach(IStreamSink sink, long lastDelivered)
    {
        lock (_lock)
        {
            if (_closed) return;
            if (Dropped || Revoked) { sink.Close(Revoked ? StreamEnd.Revoked : StreamEnd.Dropped); return; }
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
    internal void Beat(in StreamFrame heartbeat)
    {
        lock (_lock)
        {
            if (_sink is null || Dropped || Revoked || _closed) return;
            LastActivity = Environment.TickCount64;
            if (DeliverLocked(heartbeat)) _sink?.Flush();
        }
    }

    /// <summary>Hands one frame out (and sends it at once unless <paramref name="flush"/> is false: then <see cref="Flush"/>).</summary>
    public void Offer(in StreamFrame frame, bool flush = true)
    {
        lock (_lock)
        {
            if (Dropped || Revoked || _closed) return;
            LastActivity = Environment.TickCount64;
            if (_sink is not null)
            {
                if (DeliverLocked(frame) && flush) _sink?.Flush();
                return;
            }
            (_early ??= new Queue<StreamFrame>()).Enqueue(frame);
            if (_early.Count > Capacity) EndLocked(StreamEnd.Dropped);
        }
    }

    /// <summary>Sends the frames offered with flush: false.</summary>
    public void Flush()
    {
        lock (_lock) _sink?.Flush();
    }

    /// <summary>The credential stopped working (or no longer means the same): the stream ends with a revoked event.</summary>
    public void Revoke()
    {
        lock (_lock)
        {
            if (Dropped || Revoked || _closed) return;
            EndLocked(StreamEnd.Revoked);
        }
    }

    /// <summary>Ends the stream as a dropped one (not counted as falling behind): the client resumes with Last-Event-ID.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (Dropped || Revoked || _closed) return;
            EndLocked(StreamEnd.Dropped, fellBehind: false);
        }
    }

    private bool DeliverLocked(in StreamFrame frame)
    {
        if (frame.Id >= 0)
        {
            if (frame.Id <= _last) return true; // already in the replay
            _last = frame.Id;
        }
        if (_sink!.Deliver(frame)) return true;
        EndLocked(StreamEnd.Dropped);
        return false;
    }

    private void EndLocked(StreamEnd end, bool fellBehind = true)
    {
        if (end == StreamEnd.Dropped)
        {
            Dropped = true;
            if (fellBehind) ChangeHub.DroppedCounter.Add(1);
        }
        else Revoked = true;
        _early = null;
        _sink?.Close(end);
        _sink = null;
    }

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
        sink?.Close(StreamEnd.Closed);
        if (Interlocked.Exchange(ref _left, 1) == 0) _leave(this);
        return ValueTask.CompletedTask;
    }
}
