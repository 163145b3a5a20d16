// Thousands of projects on one server (issue 17): N projects made one after another, each taken through what a new
// app does first — create the project, its first console DDL (a table and a few rows), its first (cold) REST request
// and a few warm ones — and, per bucket of projects (1,000, or fewer for small N), p50/p99 of each step, PostgreSQL's
// connections and memory, pg_auth_members, and the app's memory once the bucket's projects are idle (pools trimmed):
// what one more idle project costs the app. The same run also prints the load average, since the machine is shared.
using System.Diagnostics;
using System.Net.Http.Headers;
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using DbStudio.Core.Projects;
using Npgsql;

namespace DbStudio.Bench;

public static class TenantsBench
{
    public static async Task RunAsync(int n)
    {
        var bucket = n >= 5000 ? 1000 : Math.Max(10, (int)Math.Ceiling(n / 5.0 / 10) * 10);
        // Idle pool connections close after 2 s here (60 s / 30 s by default), so "idle" can be measured in seconds.
        await using var host = await BenchHost.StartAsync(["http://127.0.0.1:0"], new Dictionary<string, string>
        {
            ["DbStudio:Rest:PoolIdle"] = "00:00:02", ["DbStudio:Console:PoolIdle"] = "00:00:02",
        });
        await host.App.StartAsync();
        var baseUrl = host.App.Urls.First();
        var services = host.App.Services;
        var userId = await host.CreateUserAsync();
        var console = services.GetRequiredService<SqlConsole>();
        var access = services.GetRequiredService<AccessPolicies>();
        var pool = services.GetRequiredService<ProjectConnectionPool>();
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
        await using var super = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(host.Cluster.SuperuserConnectionString())
            { Database = new NpgsqlConnectionStringBuilder(host.PlatformConnectionString).Database }.ConnectionString);
        var server = new ServerStats(host, super);

        async Task<(double Create, double Ddl, double Cold, double[] Warm)> OneProject()
        {
            var sw = Stopwatch.StartNew();
            var p = await host.CreateProjectAsync(userId, baseUrl);
            var create = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            var ddl = await console.RunAsync(p.Id,
                "create table items (id int primary key, title text not null, done boolean not null default false); " +
                "insert into items select g, 'item ' || g, false from generate_series(1, 20) g");
            var ddlMs = sw.Elapsed.TotalMilliseconds;
            if (ddl.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
            var (_, error) = await access.PutAsync(p.Id, "items", AccessSettings.Defaults(null) with { anon_select = true });
            if (error is not null) throw new InvalidOperationException(error);
            var cold = await Get(http, p, 1);
            var warm = new double[5];
            for (var i = 0; i < warm.Length; i++) warm[i] = await Get(http, p, 2 + i);
            return (create, ddlMs, cold, warm);
        }

        // Warm-up (JIT, the platform's pool), not counted.
        for (var i = 0; i < 3; i++) await OneProject();
        var idle0 = await server.IdleAppMemoryAsync(pool);
        var firstIdle = idle0;
        var made = 3;

        Console.WriteLine($"\n== tenants: {n} projects, buckets of {bucket}, {Environment.ProcessorCount} cores, load at start: {ServerStats.Load()} ==");
        Console.WriteLine("  (create = POST /api/projects' work; ddl = first console script: create table + 20 rows; cold = first REST GET;");
        Console.WriteLine("   warm = the next 5 GETs; PG conns/memory at the bucket's end (memory: PSS of all postgres processes);");
        Console.WriteLine("   app heap/RSS after the bucket's projects went idle and a full GC; per idle project = heap growth / projects)");
        Console.WriteLine($"  {"projects",-13} {"create p50/p99",15} {"ddl p50/p99",15} {"cold p50/p99",15} {"warm p50/p99",13} " +
                          $"{"PG conns",8} {"PG MB",7} {"auth_mem",8} {"heap MB",8} {"RSS MB",7} {"B/idle proj",11}  load");
        for (var start = 0; start < n; start += bucket)
        {
            var count = Math.Min(bucket, n - start);
            List<double> create = [], ddl = [], cold = [], warm = [];
            for (var i = 0; i < count; i++)
            {
                var r = await OneProject();
                create.Add(r.Create);
                ddl.Add(r.Ddl);
                cold.Add(r.Cold);
                warm.AddRange(r.Warm);
            }
            made += count;
            var load = ServerStats.Load();
            var (conns, pgMb) = await server.PostgresAsync();
            var memberships = await server.MembershipsAsync();
            var idle = await server.IdleAppMemoryAsync(pool);
            var perProject = (idle.Heap - idle0.Heap) / count;
            idle0 = idle;
            Console.WriteLine($"  {$"{start + 1}–{start + count}",-13} {P(create),15} {P(ddl),15} {P(cold),15} {P(warm),13} " +
                              $"{conns,8} {pgMb,7:F0} {memberships,8} {idle.Heap / 1048576.0,8:F1} {idle.Rss / 1048576.0,7:F0} {perProject,11:F0}  {load}");
        }
        var total = (idle0.Heap - firstIdle.Heap) / (made - 3);
        Console.WriteLine($"  app heap per project over the whole run, pools idle but caches warm: {total:F0} B");
        // Then a day passes with nobody using them: the app's clock moves 25 h ahead, one more project is used (which
        // runs the caches' own sweeps), and the heap is measured again.
        host.Clock.Skip(TimeSpan.FromHours(25));
        await OneProject();
        var later = await server.IdleAppMemoryAsync(pool);
        Console.WriteLine($"  app heap per idle project a day later: {(later.Heap - firstIdle.Heap) / (made - 3):F0} B (goal < 2 KB; " +
                          $"heap {firstIdle.Heap / 1048576.0:F1} MB after warm-up → {later.Heap / 1048576.0:F1} MB); load {ServerStats.Load()}");
        Console.WriteLine($"  pg_auth_members rows per project: {await server.MembershipsAsync() / (double)made:F1}; " +
                          $"platform role's memberships: {await server.PlatformMembershipsAsync()}");
    }

    private static string P(List<double> ms)
    {
        ms.Sort();
        return $"{Stats.Percentile(ms, 50):F0}/{Stats.Percentile(ms, 99):F0}";
    }

    private static async Task<double> Get(HttpClient http, ProjectInfo p, int id)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/items?id=eq.{id}");
        req.Headers.Add("apikey", p.AnonKey);
        req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        var sw = Stopwatch.StartNew();
        using var res = await http.SendAsync(req);
        var body = await res.Content.ReadAsStringAsync();
        var ms = sw.Elapsed.TotalMilliseconds;
        if (!res.IsSuccessStatusCode || !body.Contains("\"id\":" + id, StringComparison.Ordinal))
            throw new InvalidOperationException($"GET {p.Id} → {(int)res.StatusCode} {body}");
        return ms;
    }
}

/// <summary>What the server and the app hold: PostgreSQL's sessions and memory, role memberships, the app's memory.</summary>
public sealed class ServerStats(BenchHost host, NpgsqlDataSource super)
{
    public static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    public async Task<(long Connections, double PssMb)> PostgresAsync()
    {
        await using var cmd = super.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'");
        var conns = (long)(await cmd.ExecuteScalarAsync())!;
        return (conns, PostgresPssKb() / 1024.0);
    }

    public async Task<long> MembershipsAsync()
    {
        await using var cmd = super.CreateCommand("SELECT count(*) FROM pg_auth_members");
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    public async Task<long> PlatformMembershipsAsync()
    {
        await using var cmd = super.CreateCommand("SELECT count(*) FROM pg_auth_members WHERE member = $1::regrole");
        cmd.Parameters.Add(new() { Value = new NpgsqlConnectionStringBuilder(host.PlatformConnectionString).Username! });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>PSS (shared memory shared out fairly) of the postmaster and its children, in kB.</summary>
    private long PostgresPssKb()
    {
        var pidFile = Path.Combine(host.Cluster.DataDir, "postmaster.pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadLines(pidFile).First(), out var postmaster)) return 0;
        long kb = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                if (pid != postmaster && ppid != postmaster) continue;
                foreach (var line in File.ReadLines(Path.Combine(dir, "smaps_rollup")))
                    if (line.StartsWith("Pss:", StringComparison.Ordinal)) kb += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { /* exited meanwhile */ }
        }
        return kb;
    }

    /// <summary>The app's managed heap and RSS once the project pool holds no connection (waits for the idle trim).</summary>
    public async Task<(double Heap, double Rss)> IdleAppMemoryAsync(ProjectConnectionPool pool)
    {
        var deadline = Stopwatch.StartNew();
        while (pool.OpenCount > 0 && deadline.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(250);
        for (var i = 0; i < 2; i++) GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        using var self = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(false), self.WorkingSet64);
    }
}
