// The one keyed pool of project connections (ProjectConnectionPool), on real PostgreSQL connections: the global
// budget, the per-login limit, first-come-first-served waiters, least-recently-used eviction, broken and forgotten
// connections closed.
using DbStudio.Core;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class ProjectConnectionPoolTests(TestApp app)
{
    private int _opened;

    private ProjectConnectionPool Pool(int budget) =>
        new(Options.Create(new DbStudioOptions { Rest = new RestOptions { MaxConnections = budget } }));

    private PoolPolicy Policy(int limit, TimeSpan? queue = null) => new(limit, TimeSpan.FromMinutes(5), queue ?? TimeSpan.FromSeconds(30),
        async ct =>
        {
            Interlocked.Increment(ref _opened);
            var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(app.Db.PlatformConnectionString) { Pooling = false }.ConnectionString);
            await conn.OpenAsync(ct);
            return conn;
        });

    private static PoolKey Key(string project, string login = "l") => new(project, login);

    [Fact]
    public async Task A_returned_connection_is_used_again_and_waiters_are_served_in_order()
    {
        await using var pool = Pool(budget: 1);
        var policy = Policy(limit: 1);
        var first = await pool.RentAsync(Key("a"), policy, TestContext.Current.CancellationToken);
        var order = new List<int>();
        var waiters = Enumerable.Range(0, 5).Select(i => WaitThenRecord(i)).ToList();
        async Task WaitThenRecord(int i)
        {
            var c = await pool.RentAsync(Key("a"), policy, TestContext.Current.CancellationToken);
            lock (order) order.Add(i);
            pool.Return(c);
        }
        // Each waiter is in line before the next one asks (RentAsync queues synchronously before it awaits).
        Assert.All(waiters, w => Assert.False(w.IsCompleted));
        pool.Return(first);
        await Task.WhenAll(waiters);
        Assert.Equal([0, 1, 2, 3, 4], order);
        Assert.Equal(1, _opened); // one physical connection served all six
        Assert.Equal(1, pool.OpenCount);
    }

    [Fact]
    public async Task The_budget_is_kept_by_closing_the_least_recently_used_idle_connection_of_another_project()
    {
        await using var pool = Pool(budget: 2);
        var policy = Policy(limit: 2);
        var ct = TestContext.Current.CancellationToken;
        var a = await pool.RentAsync(Key("a"), policy, ct);
        var b = await pool.RentAsync(Key("b"), policy, ct);
        pool.Return(a); // a is the older idle one
        pool.Return(b);
        var c = await pool.RentAsync(Key("c"), policy, ct);
        Assert.Equal(2, pool.OpenCount);
        Assert.Equal(System.Data.ConnectionState.Closed, a.State); // evicted
        Assert.Equal(System.Data.ConnectionState.Open, b.State);
        var b2 = await pool.RentAsync(Key("b"), policy, ct);
        Assert.Same(b, b2);
        pool.Return(c);
        pool.Return(b2);
    }

    [Fact]
    public async Task A_waiter_of_another_project_gets_the_slot_a_returned_idle_connection_frees()
    {
        await using var pool = Pool(budget: 1);
        var policy = Policy(limit: 1);
        var ct = TestContext.Current.CancellationToken;
        var a = await pool.RentAsync(Key("a"), policy, ct);
        var waiting = pool.RentAsync(Key("b"), policy, ct).AsTask();
        Assert.False(waiting.IsCompleted);
        pool.Return(a);
        var b = await waiting.WaitAsync(TimeSpan.FromSeconds(30), ct);
        Assert.NotSame(a, b);
        Assert.Equal(1, pool.OpenCount);
        pool.Return(b);
    }

    [Fact]
    public async Task A_login_at_its_limit_waits_for_its_own_even_with_budget_left_and_times_out_as_busy()
    {
        await using var pool = Pool(budget: 10);
        var ct = TestContext.Current.CancellationToken;
        var a = await pool.RentAsync(Key("a"), Policy(limit: 1), ct);
        await Assert.ThrowsAsync<ProjectConnectionPool.BusyException>(() =>
            pool.RentAsync(Key("a"), Policy(limit: 1, queue: TimeSpan.FromMilliseconds(100)), ct).AsTask());
        var other = await pool.RentAsync(Key("a", "other login"), Policy(limit: 1), ct); // its own limit
        Assert.Equal(2, pool.OpenCount);
        pool.Return(a);
        pool.Return(other);
        // The waiter that gave up left no trace: the next renter gets the idle connection at once.
        Assert.Same(a, await pool.RentAsync(Key("a"), Policy(limit: 1), ct));
    }

    [Fact]
    public async Task Broken_and_forgotten_connections_are_closed_not_kept()
    {
        await using var pool = Pool(budget: 4);
        var policy = Policy(limit: 4);
        var ct = TestContext.Current.CancellationToken;
        var broken = await pool.RentAsync(Key("a"), policy, ct);
        var retired = await pool.RentAsync(Key("a"), policy, ct);
        var idle = await pool.RentAsync(Key("a"), policy, ct);
        var otherLogin = await pool.RentAsync(Key("a", "other"), policy, ct);
        pool.Return(idle);
        pool.Return(otherLogin);
        await broken.CloseAsync();
        pool.Return(broken);
        Assert.Equal(3, pool.OpenCount);
        pool.Forget("a", key => key.Login == "l");
        Assert.Equal(System.Data.ConnectionState.Closed, idle.State);
        Assert.Equal(System.Data.ConnectionState.Open, otherLogin.State); // another login of the project: kept
        pool.Return(retired); // busy while forgotten: closed when it comes back
        Assert.Equal(System.Data.ConnectionState.Closed, retired.State);
        Assert.Equal(1, pool.OpenCount);
    }

    [Fact]
    public async Task Idle_connections_past_their_lifetime_close_a_few_at_a_time_oldest_first()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T08:00:00Z"));
        await using var pool = new ProjectConnectionPool(
            Options.Create(new DbStudioOptions { Rest = new RestOptions { MaxConnections = 16 } }), clock);
        Assert.Equal(8, ProjectConnectionPool.TrimBatch(16));
        var policy = Policy(limit: 16);
        var ct = TestContext.Current.CancellationToken;
        var conns = new List<NpgsqlConnection>();
        for (var i = 0; i < 12; i++) conns.Add(await pool.RentAsync(Key($"p{i}"), policy, ct));
        foreach (var c in conns) pool.Return(c); // all idle since the same instant; p0 went back first
        // Tick by tick (the pool's timer runs on its TimeProvider) until the lifetime is past: all twelve at once.
        for (var tick = 0; tick < 400 && pool.OpenCount == 12; tick++) clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(clock.GetUtcNow() > DateTimeOffset.Parse("2026-11-30T08:05:00Z")); // not before the lifetime
        Assert.Equal(4, pool.OpenCount); // one tick closed a batch, not everything at once
        Assert.All(conns.Take(8), c => Assert.Equal(System.Data.ConnectionState.Closed, c.State));
        Assert.All(conns.Skip(8), c => Assert.Equal(System.Data.ConnectionState.Open, c.State));
        clock.Advance(TimeSpan.FromSeconds(1)); // the next tick
        Assert.Equal(0, pool.OpenCount);
    }
}

public class ConsoleConnectionResetTests(TestApp app)
{
    [Fact]
    public async Task What_a_console_run_leaves_in_its_session_is_gone_for_the_next_run()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var first = await TestApp.SqlAsync(owner, p.Id,
            "create temp table scratch (x int); set statement_timeout = 1234; set search_path = public; listen somewhere; " +
            "select pg_backend_pid(); begin; create table half (id int)");
        Assert.True(first.Length == 7, string.Join("\n", first.Select(r => r.ToString())));
        var pid = first[4].GetProperty("rows")[0][0].GetInt32();
        var next = await TestApp.SqlAsync(owner, p.Id,
            "select pg_backend_pid(), to_regclass('pg_temp.scratch') is null, current_setting('statement_timeout'), " +
            "current_setting('search_path'), (select count(*) from pg_listening_channels()), to_regclass('half') is null");
        var row = next[0].GetProperty("rows")[0];
        Assert.Equal(pid, row[0].GetInt32()); // the same connection, kept by the pool
        Assert.True(row[1].GetBoolean());
        Assert.NotEqual("1234ms", row[2].GetString());
        Assert.Equal($"proj_{p.Id}", row[3].GetString());
        Assert.Equal(0L, row[4].GetInt64());
        Assert.True(row[5].GetBoolean()); // the open transaction was rolled back
    }
}
