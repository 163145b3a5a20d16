// One PostgreSQL server per test run: Testcontainers where a Docker engine answers, otherwise a throwaway
// local cluster (fsync off) on a free loopback port. The platform role it hands out is NOT a superuser.
using DbStudio.Core.Postgres;
using DotNet.Testcontainers.Configurations;
using Npgsql;
using Testcontainers.PostgreSql;

namespace DbStudio.Tests.Infrastructure;

public sealed class PostgresServer : IAsyncDisposable
{
    public const string PlatformRole = "dbstudio_test";
    public const string PlatformDatabase = "dbstudio_test";
    private const string RunFolderPrefix = "dbstudio-tests-";

    private LocalCluster? _cluster;
    private PostgreSqlContainer? _container;

    public required string SuperuserConnectionString { get; init; }
    public required string PlatformConnectionString { get; init; }
    public LocalCluster? Cluster => _cluster;
    public string Kind => _container is not null ? "testcontainers" : "local cluster";

    public static async Task<PostgresServer> StartAsync()
    {
        string superuser;
        LocalCluster? cluster = null;
        PostgreSqlContainer? container = null;
        if (DockerAnswers())
        {
            container = new PostgreSqlBuilder("postgres:15-alpine").WithUsername("postgres").WithPassword("postgres").Build();
            await container.StartAsync();
            superuser = new NpgsqlConnectionStringBuilder(container.GetConnectionString()) { Database = "postgres" }.ConnectionString;
        }
        else
        {
            CleanStaleRuns();
            var runDir = Path.Combine(Path.GetTempPath(), $"{RunFolderPrefix}{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
            Directory.CreateDirectory(runDir);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(runDir, (UnixFileMode)0b111_101_101);
            await File.WriteAllTextAsync(Path.Combine(runDir, "owner.pid"), Environment.ProcessId.ToString());
            cluster = await LocalCluster.StartAsync(new LocalClusterOptions
            {
                DataDir = Path.Combine(runDir, "pgdata"), Ephemeral = true, SuperuserPassword = "test-superuser-pw",
            });
            superuser = cluster.SuperuserConnectionString();
        }
        var platform = await PlatformBootstrap.EnsureRoleAndDatabaseAsync(superuser, PlatformRole, "test-platform-pw", PlatformDatabase);
        var server = new PostgresServer { SuperuserConnectionString = superuser, PlatformConnectionString = platform };
        server._cluster = cluster;
        server._container = container;
        return server;
    }

    private static bool DockerAnswers()
    {
        try { return TestcontainersSettings.OS.DockerEndpointAuthConfig is not null; }
        catch (Exception) { return false; }
    }

    /// <summary>A killed test run leaves its cluster running and its folder behind: stop and delete those.</summary>
    private static void CleanStaleRuns()
    {
        foreach (var dir in Directory.GetDirectories(Path.GetTempPath(), RunFolderPrefix + "*"))
        {
            var pidFile = Path.Combine(dir, "owner.pid");
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile), out var pid) && ProcessAlive(pid)) continue;
            var pgPid = Path.Combine(dir, "pgdata", "postmaster.pid");
            if (File.Exists(pgPid) && int.TryParse(File.ReadLines(pgPid).FirstOrDefault(), out var postmaster))
                try { System.Diagnostics.Process.GetProcessById(postmaster).Kill(); } catch (Exception) { /* gone */ }
            try { Directory.Delete(dir, recursive: true); } catch (Exception) { /* in use; next run */ }
        }
    }

    private static bool ProcessAlive(int pid)
    {
        try { return !System.Diagnostics.Process.GetProcessById(pid).HasExited; }
        catch (ArgumentException) { return false; }
    }

    public async ValueTask DisposeAsync()
    {
        if (_container is not null) await _container.DisposeAsync();
        if (_cluster is not null)
        {
            await _cluster.StopAsync(immediate: true);
            try { Directory.Delete(Path.GetDirectoryName(_cluster.DataDir)!, recursive: true); } catch (Exception) { /* best effort */ }
        }
    }
}
