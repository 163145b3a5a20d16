// Provisioning time per project (goal: median under 50 ms), next to a baseline measured in the same run:
// the bare DDL of one role and one schema in one transaction, which no provisioning can beat.
using System.Diagnostics;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Identity;
using Npgsql;

namespace DbStudio.Bench;

public static class ProvisioningBench
{
    public static async Task RunAsync(int n)
    {
        await using var host = await BenchHost.StartAsync();
        var services = host.App.Services;
        var userId = await host.CreateUserAsync();

        // Warm-up (JIT, pools), not measured.
        for (var i = 0; i < 5; i++) await CreateDelete(services, userId);
        await using var raw = NpgsqlDataSource.Create(host.PlatformConnectionString);
        for (var i = 0; i < 5; i++) await Baseline(raw);

        var create = new List<double>();
        var delete = new List<double>();
        var baseline = new List<double>();
        for (var i = 0; i < n; i++)
        {
            var (c, d) = await CreateDelete(services, userId);
            create.Add(c);
            delete.Add(d);
            baseline.Add(await Baseline(raw));
        }
        var createMedian = Median(create);
        var baseMedian = Median(baseline);
        Console.WriteLine("== provisioning ==");
        Console.WriteLine($"create project (roles, schema, grants, encrypted secrets, metadata): {Stats.Summary(create)}");
        Console.WriteLine($"delete project:                                                    {Stats.Summary(delete)}");
        Console.WriteLine($"baseline: CREATE ROLE + CREATE SCHEMA in one transaction:          {Stats.Summary(baseline)}");
        Console.WriteLine($"ratio create/baseline (median): {createMedian / baseMedian:F2}x");
        Console.WriteLine($"goal: median create under 50 ms -> {(createMedian < 50 ? "met" : "NOT met")} ({createMedian:F1} ms)");
    }

    private static async Task<(double Create, double Delete)> CreateDelete(IServiceProvider services, string userId)
    {
        await using var scope = services.CreateAsyncScope();
        var projects = scope.ServiceProvider.GetRequiredService<ProjectService>();
        var sw = Stopwatch.StartNew();
        var p = await projects.CreateAsync(userId, "bench", "http://localhost");
        var c = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        await projects.DeleteAsync(userId, p.Id);
        return (c, sw.Elapsed.TotalMilliseconds);
    }

    private static async Task<double> Baseline(NpgsqlDataSource raw)
    {
        var name = "bench_" + ProjectNaming.NewId();
        var sw = Stopwatch.StartNew();
        await using (var cmd = raw.CreateCommand($"BEGIN; CREATE ROLE \"{name}\"; GRANT \"{name}\" TO CURRENT_USER; CREATE SCHEMA \"{name}\" AUTHORIZATION \"{name}\"; COMMIT;"))
            await cmd.ExecuteNonQueryAsync();
        var ms = sw.Elapsed.TotalMilliseconds;
        await using (var drop = raw.CreateCommand($"DROP SCHEMA \"{name}\"; DROP ROLE \"{name}\";"))
            await drop.ExecuteNonQueryAsync();
        return ms;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return Stats.Percentile(s, 50);
    }
}
