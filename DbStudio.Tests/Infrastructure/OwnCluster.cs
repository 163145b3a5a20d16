// A PostgreSQL cluster of one test's own, for tests that stop or restart their database (the shared one serves every
// other test): a platform role and database on it, and a way to bring it back on the same port.
using DbStudio.Core.Postgres;

namespace DbStudio.Tests.Infrastructure;

public sealed class OwnCluster : IAsyncDisposable
{
    private readonly string _root;
    private readonly LocalClusterOptions _options;

    private OwnCluster(string root, LocalClusterOptions options, LocalCluster cluster, string platformConnectionString)
    {
        _root = root;
        _options = options;
        Cluster = cluster;
        PlatformConnectionString = platformConnectionString;
    }

    public LocalCluster Cluster { get; private set; }
    public string PlatformConnectionString { get; }

    public static async Task<OwnCluster> StartAsync(string name)
    {
        var root = Path.Combine(Path.GetTempPath(), $"dbstudio-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101); // the cluster runs as an unprivileged user
        var options = new LocalClusterOptions { DataDir = Path.Combine(root, "pgdata"), Ephemeral = true, SuperuserPassword = name };
        var cluster = await LocalCluster.StartAsync(options);
        var cs = await PlatformBootstrap.EnsureRoleAndDatabaseAsync(cluster.SuperuserConnectionString(), "dbstudio", name, "dbstudio");
        return new OwnCluster(root, options, cluster, cs);
    }

    /// <summary>Starts the stopped cluster again on its port, so the app's connection string still points at it.</summary>
    public async Task StartAgainAsync() => Cluster = await LocalCluster.StartAsync(_options with { Port = Cluster.Port });

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        try { Directory.Delete(_root, true); } catch (Exception) { /* files owned by postgres */ }
    }
}
