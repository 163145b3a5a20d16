// A throwaway PostgreSQL cluster plus the app's services on it, for benchmarks.
using DbStudio.Core.Platform;
using DbStudio.Core.Postgres;
using DbStudio.Core.Projects;
using DbStudio.Web.Hosting;
using Microsoft.AspNetCore.Identity;

namespace DbStudio.Bench;

public sealed class BenchHost : IAsyncDisposable
{
    public required LocalCluster Cluster { get; init; }
    public required WebApplication App { get; init; }
    public required string PlatformConnectionString { get; init; }
    /// <summary>The app's clock: real time, which a benchmark may move ahead (to see what idle projects leave behind).</summary>
    public required SkippableClock Clock { get; init; }

    public static async Task<BenchHost> StartAsync(string[]? urls = null, IReadOnlyDictionary<string, string>? settings = null,
        string? serverOptions = null)
    {
        var root = Path.Combine(Path.GetTempPath(), $"dbstudio-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101);
        var cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            DataDir = Path.Combine(root, "pgdata"), Ephemeral = true, SuperuserPassword = "bench",
            // BENCH_PG_OPTS: more server settings for any benchmark's cluster, e.g. to see where PostgreSQL's time goes:
            // "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
            ServerOptions = string.Join(' ', new[] { serverOptions, Environment.GetEnvironmentVariable("BENCH_PG_OPTS") }.Where(o => !string.IsNullOrWhiteSpace(o))),
        });
        var cs = await PlatformBootstrap.EnsureRoleAndDatabaseAsync(cluster.SuperuserConnectionString(), "dbstudio", "bench", "dbstudio");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Configuration["ConnectionStrings:Platform"] = cs;
        // The load generators are one client with one key: no per-client limits in benchmarks.
        builder.Configuration["DbStudio:Rest:RequestsPerSecondPerIp"] = "0";
        builder.Configuration["DbStudio:Rest:RequestsPerSecondPerKey"] = "0";
        // One account makes every project of a benchmark (provisioning 100, soak 50): no account quota or creation rate.
        builder.Configuration["DbStudio:Limits:ProjectsPerAccount"] = "0";
        builder.Configuration["DbStudio:Limits:ProjectsCreatedPerHour"] = "0";
        foreach (var (k, v) in settings ?? new Dictionary<string, string>()) builder.Configuration[k] = v;
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        if (urls is not null) builder.WebHost.UseUrls(urls);
        await builder.AddDbStudioAsync();
        var clock = new SkippableClock();
        builder.Services.AddSingleton<TimeProvider>(clock); // after the app's own registration: this one is resolved
        var app = builder.Build();
        await app.UseDbStudioAsync();
        return new BenchHost { Cluster = cluster, App = app, PlatformConnectionString = cs, Clock = clock };
    }

    /// <summary>A platform account for the benchmark's projects.</summary>
    public async Task<string> CreateUserAsync()
    {
        await using var scope = App.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<PlatformUser>>();
        var user = new PlatformUser { UserName = "bench@example.com", Email = "bench@example.com" };
        var created = await users.CreateAsync(user, "bench password");
        if (!created.Succeeded) throw new InvalidOperationException(string.Join(" ", created.Errors.Select(e => e.Description)));
        return user.Id;
    }

    public async Task<ProjectInfo> CreateProjectAsync(string userId, string baseUrl = "http://localhost")
    {
        await using var scope = App.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<ProjectService>().CreateAsync(userId, "bench", baseUrl);
    }

    public async ValueTask DisposeAsync()
    {
        try { await App.StopAsync(); } catch (Exception) { /* not started, or already stopping */ }
        await App.DisposeAsync();
        await Cluster.StopAsync(immediate: true);
        try { Directory.Delete(Path.GetDirectoryName(Cluster.DataDir)!, true); } catch (Exception) { /* best effort */ }
    }
}

/// <summary>The system's time plus an offset that only grows.</summary>
public sealed class SkippableClock : TimeProvider
{
    private long _offsetTicks;

    public void Skip(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow().AddTicks(Interlocked.Read(ref _offsetTicks));
    public override long GetTimestamp() =>
        System.GetTimestamp() + (long)(Interlocked.Read(ref _offsetTicks) * (System.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
    public override long TimestampFrequency => System.TimestampFrequency;
}

public static class Stats
{
    public static double Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    public static string Summary(List<double> ms)
    {
        ms.Sort();
        return $"median {Percentile(ms, 50):F1} ms, p95 {Percentile(ms, 95):F1} ms, max {ms[^1]:F1} ms (n={ms.Count})";
    }
}
