// The embedded default: with no ConnectionStrings:Platform, start a local PostgreSQL from the machine's
// binaries (data in a per-user folder), create the non-superuser platform role, and stop it on shutdown.
using System.Text.Json;
using DbStudio.Core.Postgres;
using DbStudio.Core.Projects;

namespace DbStudio.Web.Hosting;

public sealed class EmbeddedOptions
{
    public const string Section = "Embedded";
    /// <summary>Folder for the cluster and its credentials; default ~/.local/share/dbstudio (root: /var/lib/dbstudio).</summary>
    public string? DataDir { get; set; }
    /// <summary>0 = the port used last time if free, else any free loopback port.</summary>
    public int Port { get; set; }
    public string Role { get; set; } = "dbstudio";
    public string Database { get; set; } = "dbstudio";
}

public static class EmbeddedPostgres
{
    private sealed record State(string SuperuserPassword, string PlatformPassword, int Port);

    public static string DefaultRoot()
    {
        if (OperatingSystem.IsLinux() && Environment.UserName == "root") return "/var/lib/dbstudio";
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        var baseDir = !string.IsNullOrEmpty(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(baseDir, "dbstudio");
    }

    /// <summary>Starts (or adopts) the cluster and returns the platform connection string.</summary>
    public static async Task<(LocalCluster Cluster, string ConnectionString)> StartAsync(EmbeddedOptions options, ILogger log)
    {
        var root = Path.GetFullPath(options.DataDir ?? DefaultRoot());
        Directory.CreateDirectory(root);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101); // 0755: the server user must pass
        var statePath = Path.Combine(root, "credentials.json");
        var state = File.Exists(statePath)
            ? JsonSerializer.Deserialize<State>(await File.ReadAllTextAsync(statePath))!
            : new State(ProjectNaming.NewPassword(), ProjectNaming.NewPassword(), 0);

        var port = options.Port != 0 ? options.Port
            : state.Port != 0 && PortIsFree(state.Port) ? state.Port : 0;
        var cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            DataDir = Path.Combine(root, "pgdata"), Port = port, SuperuserPassword = state.SuperuserPassword,
        });
        state = state with { Port = cluster.Port };
        await File.WriteAllTextAsync(statePath, JsonSerializer.Serialize(state));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(statePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var cs = await PlatformBootstrap.EnsureRoleAndDatabaseAsync(
            cluster.SuperuserConnectionString(), options.Role, state.PlatformPassword, options.Database);
        log.LogInformation("Embedded PostgreSQL is up on 127.0.0.1:{Port} (data in {DataDir})", cluster.Port, cluster.DataDir);
        return (cluster, cs);
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
            l.Start();
            return true;
        }
        catch (System.Net.Sockets.SocketException) { return false; }
    }
}
