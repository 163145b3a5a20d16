// The one pool of connections that log in as a project's own roles — REST's four logins (RestConnections) and the
// owner's console connections (OwnerConnections) — with one budget for all projects (DbStudio:Rest:MaxConnections).
// A connection belongs to one project and login, so Npgsql's pools (one per connection string, no shared limit)
// would hold idle connections for every project that was busy lately — 50 busy projects ran PostgreSQL out of
// connection slots. Here:
//  - idle connections are kept per key (project + login), newest first, and in one least-recently-used list: when the
//    budget is spent, the oldest idle connection of any project is closed to open the one needed;
//  - each key has a CONNECTION LIMIT (PostgreSQL would refuse one more): past it, a request waits for one of its own;
//  - waiters are served first come, first served, as in Npgsql's PoolingDataSource: each key's waiters read from a
//    Channel (whose readers are served in order), and a freed budget slot goes to the oldest waiter of any key. A
//    returned connection is handed to exactly one waiter — nobody else is woken to look.
//  - idle connections past their lifetime are closed a few at a time, every second (TrimIdle): a burst of traffic
//    that opened a thousand sessions does not end in a thousand PostgreSQL backends exiting in the same instant.
// Broken connections (not Open when returned) and those of a forgotten project are closed, not kept.
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

/// <summary>A project's login a pooled connection logs in as.</summary>
public readonly record struct PoolKey(string Project, string Login);

/// <summary>
/// How connections of one key are opened and kept: <paramref name="Open"/> opens one on its own, or
/// <paramref name="OpenFor"/> opens one for the key from the key's <see cref="PoolSource"/> (one policy then serves every
/// project, and nothing is kept per project outside the pool's table of keys in use).
/// </summary>
public sealed record PoolPolicy(int LoginLimit, TimeSpan IdleLifetime, TimeSpan QueueTimeout,
    Func<CancellationToken, Task<NpgsqlConnection>>? Open,
    Func<PoolKey, PoolSource, CancellationToken, Task<NpgsqlConnection>>? OpenFor = null);

/// <summary>
/// The NpgsqlDataSource a key's connections are opened from, kept as long as the key has a connection (idle, busy or
/// being opened) and disposed with the key. A bare <c>new NpgsqlConnection(connectionString)</c> would register a data
/// source per connection string in Npgsql's static table for the life of the process — with its own copy of the
/// server's type catalog: about 80 KB for every project ever used.
/// </summary>
public sealed class PoolSource : IDisposable
{
    private readonly Lock _lock = new();
    private string? _connectionString;
    private NpgsqlDataSource? _current;
    private List<NpgsqlDataSource>? _retired;
    private bool _disposed;

    /// <summary>The data source for <paramref name="connectionString"/> (a new one when it changed, say a new password).</summary>
    public NpgsqlDataSource Get(string connectionString, Func<string, NpgsqlDataSource> build)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_current is not null && _connectionString == connectionString) return _current;
            // Connections opened from the old one may still be open: it goes when the key does.
            if (_current is not null) (_retired ??= []).Add(_current);
            _connectionString = connectionString;
            return _current = build(connectionString);
        }
    }

    /// <summary>Forgets the connection string (a password changed): the next connection reads the secret again.</summary>
    public void Invalidate()
    {
        lock (_lock)
        {
            if (_current is not null) (_retired ??= []).Add(_current);
            _current = null;
            _connectionString = null;
        }
    }

    /// <summary>The connection string last used, if any (so that a project's secret is read once while it is active).</summary>
    public string? ConnectionString { get { lock (_lock) return _connectionString; } }

    public void Dispose()
    {
        List<NpgsqlDataSource> all;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            all = [.. _retired ?? [], .. _current is null ? [] : new[] { _current }];
            _current = null;
            _retired = null;
        }
        foreach (var s in all) s.Dispose();
    }
}

public sealed class ProjectConnectionPool : IAsyncDisposable
{
    /// <summary>Every connection stayed busy for the whole queue timeout (nothing is broken: retry later).</summary>
    public sealed class BusyException(string message) : NpgsqlException(message);

    /// <summary>An idle connection, in its key's stack and in the least-recently-used list.</summary>
    private sealed class Idle(NpgsqlConnection connection, KeyState key, long since)
    {
        public NpgsqlConnection Connection { get; } = connection;
        public KeyState Key { get; } = key;
        public long Since { get; } = since;
        public LinkedListNode<Idle>? Node;
    }

    /// <summary>What the pool hands a waiter: a connection ready to use, or (null) a budget slot to open one with.</summary>
    private readonly record struct Grant(NpgsqlConnection? Connection);

    /// <summary>One key's connections; disposing it disposes its data source (once none of its connections is open).</summary>
    private sealed class KeyState(PoolKey key) : IDisposable
    {
        public PoolKey Key { get; } = key;
        public PoolPolicy Policy = null!;
        public readonly List<Idle> Idle = []; // newest last
        public int Busy; // rented, or being opened for a renter
        public int Waiting; // waiters not yet granted anything
        public int Generation; // raised when the key is forgotten: its busy connections are closed when they come back
        public readonly Channel<Grant> Grants = Channel.CreateUnbounded<Grant>(new UnboundedChannelOptions { SingleWriter = true });
        public readonly PoolSource Source = new();
        public void Dispose() => Source.Dispose();
    }

    private readonly Lock _lock = new();
    private readonly Dictionary<PoolKey, KeyState> _keys = [];
    private readonly LinkedList<Idle> _lru = new();
    /// <summary>Waiters of every key in arrival order (one entry per waiter not yet granted anything).</summary>
    private readonly LinkedList<KeyState> _queue = new();
    private readonly Dictionary<NpgsqlConnection, (KeyState Key, int Generation)> _busy = new(ReferenceEqualityComparer.Instance);
    private int _budget;
    private readonly TimeProvider _clock;
    private readonly ITimer _trim;
    private int _open;

    /// <param name="budget">Connections this pool holds at most (one pool per server: ServerPools); 0 = Rest:MaxConnections.</param>
    public ProjectConnectionPool(IOptions<DbStudioOptions> options, TimeProvider? clock = null, int budget = 0)
    {
        _budget = budget > 0 ? budget
            : options.Value.Rest.MaxConnections > 0 ? options.Value.Rest.MaxConnections : RestOptions.DefaultMaxConnections;
        _clock = clock ?? TimeProvider.System;
        var period = TimeSpan.FromSeconds(Math.Clamp(Math.Min(options.Value.Rest.PoolIdle.TotalSeconds,
            options.Value.Console.PoolIdle.TotalSeconds) / 4, 0.25, 1));
        _trim = _clock.CreateTimer(_ => TrimIdle(), null, period, period);
    }

    /// <summary>Connections this pool opens at most, all projects together.</summary>
    public int Budget { get { lock (_lock) return _budget; } }

    /// <summary>Sets the budget (sized from the server's max_connections at start-up when none is configured).</summary>
    public void SetBudget(int budget)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(budget, 1);
        List<NpgsqlConnection> close = [];
        lock (_lock)
        {
            _budget = budget;
            GrantFreedSlotsLocked(close);
        }
        foreach (var c in close) c.Dispose();
    }

    /// <summary>
    /// The connection budget for a server: what max_connections leaves after the superuser's slots, the platform's
    /// reserve and its own few sessions (EF Core's pool, the listener, the change-log reader), three quarters of it —
    /// the owners' Connection URL sessions and a second instance need room too. Never below 16.
    /// </summary>
    public static int BudgetFor(int maxConnections, int superuserReserved, int platformReserve) =>
        Math.Max(16, (maxConnections - superuserReserved - platformReserve - 10) * 3 / 4);

    /// <summary>Open physical connections (idle and busy), for tests and metrics.</summary>
    public int OpenCount { get { lock (_lock) return _open; } }

    /// <summary>A connection of <paramref name="key"/>; give it back with <see cref="Return"/>.</summary>
    public async ValueTask<NpgsqlConnection> RentAsync(PoolKey key, PoolPolicy policy, CancellationToken ct)
    {
        KeyState state;
        NpgsqlConnection? victim = null;
        var openNew = false;
        lock (_lock)
        {
            if (!_keys.TryGetValue(key, out state!)) _keys[key] = state = new KeyState(key);
            state.Policy = policy;
            if (state.Waiting == 0 && state.Idle.Count > 0)
            {
                var idle = TakeIdleLocked(state, newest: true);
                return MarkBusyLocked(idle.Connection, state);
            }
            if (state.Waiting == 0 && state.Busy < policy.LoginLimit)
            {
                if (_open < _budget) { _open++; openNew = true; }
                else if (state.Busy == 0 && _lru.First is { } oldest)
                {
                    // The budget is spent: the least recently used idle connection (of any project) makes room.
                    victim = TakeIdleLocked(oldest.Value.Key, newest: false).Connection;
                    openNew = true;
                }
                // else: one of its own comes back soon (no churn), or nothing is idle: wait in line.
            }
            if (openNew) state.Busy++;
            else
            {
                state.Waiting++;
                _queue.AddLast(state);
            }
        }
        if (victim is not null) await victim.DisposeAsync();
        if (openNew) return await OpenCountedAsync(state, ct);

        // In line: the key's channel hands this waiter a connection or a slot, in order.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(policy.QueueTimeout);
        Grant grant;
        try { grant = await state.Grants.Reader.ReadAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            lock (_lock)
            {
                // A grant made while this waiter gave up is this waiter's after all (grants are made under the lock).
                if (!state.Grants.Reader.TryRead(out grant))
                {
                    state.Waiting--;
                    RemoveQueuedLocked(state, fromEnd: true);
                    ct.ThrowIfCancellationRequested();
                    throw new BusyException($"All {_budget} project connections are busy");
                }
            }
        }
        if (grant.Connection is { } conn) return conn;
        return await OpenCountedAsync(state, ct);
    }

    /// <summary>Opens a connection for which a budget slot and a place under the login's limit are already counted.</summary>
    private async Task<NpgsqlConnection> OpenCountedAsync(KeyState state, CancellationToken ct)
    {
        try
        {
            var policy = state.Policy;
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    var conn = policy.OpenFor is { } openFor ? await openFor(state.Key, state.Source, ct)
                        : await (policy.Open ?? throw new InvalidOperationException("a pool policy needs Open or OpenFor"))(ct);
                    lock (_lock) _busy[conn] = (state, state.Generation);
                    return conn;
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.TooManyConnections && attempt < 3)
                {
                    // The server is fuller than the budget assumed (other instances, owners' own sessions): this pool's
                    // least recently used idle connection makes room, as when the budget itself is spent.
                    NpgsqlConnection? victim = null;
                    lock (_lock)
                    {
                        if (_lru.First is { } oldest)
                        {
                            victim = TakeIdleLocked(oldest.Value.Key, newest: false).Connection;
                            _open--;
                        }
                    }
                    if (victim is null) throw;
                    await victim.DisposeAsync();
                }
            }
        }
        catch
        {
            List<NpgsqlConnection> close = [];
            lock (_lock)
            {
                state.Busy--;
                _open--;
                GrantFreedSlotsLocked(close);
            }
            foreach (var c in close) await c.DisposeAsync();
            throw;
        }
    }

    private NpgsqlConnection MarkBusyLocked(NpgsqlConnection conn, KeyState state)
    {
        _busy[conn] = (state, state.Generation);
        state.Busy++;
        return conn;
    }

    /// <summary>Gives a rented connection back: kept for its key when healthy, else closed.</summary>
    public void Return(NpgsqlConnection conn, bool reusable = true)
    {
        List<NpgsqlConnection> close = [];
        lock (_lock)
        {
            if (!_busy.Remove(conn, out var owner)) return;
            var state = owner.Key;
            var keep = reusable && conn.FullState == System.Data.ConnectionState.Open
                && owner.Generation == state.Generation;
            if (keep && state.Waiting > 0)
            {
                // Straight to the first of its own waiters: it stays busy for the key.
                _busy[conn] = owner;
                GrantLocked(state, new Grant(conn));
                return;
            }
            state.Busy--;
            if (keep) AddIdleLocked(state, conn);
            else
            {
                _open--;
                close.Add(conn);
            }
            GrantFreedSlotsLocked(close);
        }
        foreach (var c in close) c.Dispose();
    }

    /// <summary>
    /// Serves waiters, oldest first, that may open a connection (below their login's limit): with a free budget slot,
    /// or — when nothing of their own is busy to come back — by closing the least recently used idle connection.
    /// </summary>
    private void GrantFreedSlotsLocked(List<NpgsqlConnection> close)
    {
        for (var n = _queue.First; n is not null;)
        {
            var next = n.Next;
            var state = n.Value;
            if (state.Busy < state.Policy.LoginLimit)
            {
                if (state.Idle.Count > 0)
                    GrantLocked(state, new Grant(MarkBusyLocked(TakeIdleLocked(state, newest: true).Connection, state)));
                else if (_open < _budget)
                {
                    _open++;
                    state.Busy++;
                    GrantLocked(state, new Grant(null));
                }
                else if (state.Busy == 0 && _lru.First is { } oldest)
                {
                    close.Add(TakeIdleLocked(oldest.Value.Key, newest: false).Connection);
                    state.Busy++;
                    GrantLocked(state, new Grant(null));
                }
            }
            n = next;
        }
    }

    private void GrantLocked(KeyState state, Grant grant)
    {
        state.Waiting--;
        RemoveQueuedLocked(state, fromEnd: false);
        state.Grants.Writer.TryWrite(grant);
    }

    private void RemoveQueuedLocked(KeyState state, bool fromEnd)
    {
        var n = fromEnd ? _queue.Last : _queue.First;
        while (n is not null && !ReferenceEquals(n.Value, state)) n = fromEnd ? n.Previous : n.Next;
        if (n is not null) _queue.Remove(n);
    }

    private void AddIdleLocked(KeyState state, NpgsqlConnection conn)
    {
        var idle = new Idle(conn, state, _clock.GetTimestamp());
        idle.Node = _lru.AddLast(idle);
        state.Idle.Add(idle);
    }

    /// <summary>Takes the newest (to use) or the oldest (to close) idle connection of a key out of the pool's lists.</summary>
    private Idle TakeIdleLocked(KeyState state, bool newest)
    {
        var i = newest ? state.Idle.Count - 1 : 0;
        var idle = state.Idle[i];
        state.Idle.RemoveAt(i);
        _lru.Remove(idle.Node!);
        return idle;
    }

    /// <summary>Closes the project's idle connections and retires its busy ones (project deleted, password changed).</summary>
    public void Forget(string project, Func<PoolKey, bool>? which = null)
    {
        List<NpgsqlConnection> close = [];
        List<KeyState>? dropped;
        lock (_lock)
        {
            foreach (var state in _keys.Values)
            {
                if (state.Key.Project != project || which?.Invoke(state.Key) == false) continue;
                state.Generation++;
                state.Source.Invalidate();
                while (state.Idle.Count > 0)
                {
                    close.Add(TakeIdleLocked(state, newest: false).Connection);
                    _open--;
                }
            }
            if (close.Count > 0) GrantFreedSlotsLocked(close);
            dropped = DropUnusedKeysLocked();
        }
        foreach (var c in close) c.Dispose();
        foreach (var d in dropped ?? []) d.Dispose();
    }

    /// <summary>Closes every idle connection (the server restarted: they are all broken).</summary>
    public void ClearAll() => CloseIdle(_ => true, dropUnusedKeys: false); // keys (their connection strings) stay for the reconnect

    /// <summary>
    /// Closes idle connections past their lifetime, oldest first, at most <see cref="TrimBatch"/> a tick: a backend's
    /// exit costs PostgreSQL about as much CPU as its start, and a thousand at once stall everyone's requests.
    /// </summary>
    private void TrimIdle()
    {
        var now = _clock.GetTimestamp();
        CloseIdle(idle => _clock.GetElapsedTime(idle.Since, now) > idle.Key.Policy.IdleLifetime, dropUnusedKeys: true,
            limit: TrimBatch(Budget));
    }

    /// <summary>Idle connections closed per trim tick: a thirty-second of the budget, at least 8 (about 30 s to shed a full pool).</summary>
    internal static int TrimBatch(int budget) => Math.Max(8, budget / 32);

    private void CloseIdle(Func<Idle, bool> expired, bool dropUnusedKeys, int limit = int.MaxValue)
    {
        List<NpgsqlConnection> close = [];
        List<KeyState>? dropped;
        lock (_lock)
        {
            for (var n = _lru.First; n is not null && close.Count < limit;)
            {
                var next = n.Next;
                if (expired(n.Value))
                {
                    var state = n.Value.Key;
                    state.Idle.Remove(n.Value);
                    _lru.Remove(n);
                    close.Add(n.Value.Connection);
                    _open--;
                }
                n = next;
            }
            if (close.Count > 0) GrantFreedSlotsLocked(close);
            dropped = dropUnusedKeys ? DropUnusedKeysLocked() : null;
        }
        foreach (var c in close) c.Dispose();
        foreach (var d in dropped ?? []) d.Dispose();
    }

    /// <summary>Keys with nothing idle, busy or waiting are dropped, so the table does not grow with every project ever seen.</summary>
    private List<KeyState>? DropUnusedKeysLocked()
    {
        List<KeyState>? unused = null;
        foreach (var state in _keys.Values)
            if (state.Idle.Count == 0 && state.Busy == 0 && state.Waiting == 0 && state.Grants.Reader.Count == 0)
                (unused ??= []).Add(state);
        if (unused is null) return null;
        foreach (var state in unused) _keys.Remove(state.Key);
        return unused; // their data sources are disposed outside the lock: none of their connections is open
    }

    public async ValueTask DisposeAsync()
    {
        await _trim.DisposeAsync();
        CloseIdle(_ => true, dropUnusedKeys: true);
    }
}
