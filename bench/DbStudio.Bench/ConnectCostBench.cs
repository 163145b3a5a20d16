// What a new project connection costs (issue 17): opening a PostgreSQL session as a project login, with the data source
// kept (Npgsql's bootstrap done once) or built for the connection, with no type loading and with it, and how the cost
// grows with the number of logins that hold CONNECT on the database (each adds an entry to pg_database's ACL, which every
// new session reads).
using System.Diagnostics;
using DbStudio.Core.Postgres;
using Npgsql;

namespace DbStudio.Bench;

public static class ConnectCostBench
{
    public static async Task RunAsync(int logins, int samples)
    {
        var root = Path.Combine(Path.GetTempPath(), $"dbstudio-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101);
        await using var cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            DataDir = Path.Combine(root, "pgdata"), Ephemeral = true, SuperuserPassword = "bench",
        });
        try
        {
            var su = cluster.SuperuserConnectionString();
            await using var admin = NpgsqlDataSource.Create(su);
            await using (var cmd = admin.CreateCommand("CREATE DATABASE cc; "))
                await cmd.ExecuteNonQueryAsync();
            var db = new NpgsqlConnectionStringBuilder(su) { Database = "cc" }.ConnectionString;
            await using var dbAdmin = NpgsqlDataSource.Create(db);
            await Exec(dbAdmin, "REVOKE ALL ON DATABASE cc FROM PUBLIC; CREATE ROLE probe LOGIN NOINHERIT PASSWORD 'probe'; " +
                                "CREATE ROLE probe_anon NOLOGIN; GRANT probe_anon TO probe; GRANT CONNECT ON DATABASE cc TO probe");
            var probe = new NpgsqlConnectionStringBuilder(db) { Username = "probe", Password = "probe", Pooling = false }.ConnectionString;
            Console.WriteLine($"\n== connect cost: {samples} sessions each, {Environment.ProcessorCount} cores, load {ServerStats.Load()} ==");
            Console.WriteLine($"  {"CONNECT grantees",16} {"kept source",12} {"new source",11} {"new + types",12} {"open+SET ROLE",14}");
            var done = 0;
            foreach (var target in new[] { 0, logins / 4, logins }.Distinct())
            {
                for (; done < target; done += 500)
                {
                    var sql = string.Join(";", Enumerable.Range(done, Math.Min(500, target - done))
                        .Select(i => $"CREATE ROLE l{i} LOGIN NOINHERIT; GRANT CONNECT ON DATABASE cc TO l{i}"));
                    await Exec(dbAdmin, sql);
                }
                await using var kept = Build(probe, typeLoading: false);
                var keptMs = await Time(samples, async () => { await using var c = await kept.OpenConnectionAsync(); });
                var newMs = await Time(samples, async () =>
                {
                    await using var s = Build(probe, typeLoading: false);
                    await using var c = await s.OpenConnectionAsync();
                });
                var typesMs = await Time(Math.Max(10, samples / 5), async () =>
                {
                    await using var s = Build(probe, typeLoading: true);
                    await using var c = await s.OpenConnectionAsync();
                });
                var roleMs = await Time(samples, async () =>
                {
                    await using var c = await kept.OpenConnectionAsync();
                    await using var cmd = new NpgsqlCommand("SELECT set_config('role', 'probe_anon', false)", c);
                    await cmd.ExecuteNonQueryAsync();
                });
                Console.WriteLine($"  {target,16} {keptMs,9:F2} ms {newMs,8:F2} ms {typesMs,9:F2} ms {roleMs,11:F2} ms   load {ServerStats.Load()}");
            }
        }
        finally
        {
            await cluster.StopAsync(immediate: true);
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static NpgsqlDataSource Build(string cs, bool typeLoading)
    {
        var b = new NpgsqlDataSourceBuilder(cs);
        if (!typeLoading) b.ConfigureTypeLoading(t => t.EnableTypeLoading(false));
        return b.Build();
    }

    private static async Task<double> Time(int n, Func<Task> once)
    {
        for (var i = 0; i < 3; i++) await once();
        var ms = new List<double>();
        for (var i = 0; i < n; i++)
        {
            var sw = Stopwatch.StartNew();
            await once();
            ms.Add(sw.Elapsed.TotalMilliseconds);
        }
        ms.Sort();
        return Stats.Percentile(ms, 50);
    }

    private static async Task Exec(NpgsqlDataSource ds, string sql)
    {
        await using var cmd = ds.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }
}
