// A PostgreSQL cluster run from the machine's own binaries: initdb on first use, pg_ctl start on a
// loopback port, pg_ctl stop on dispose. Used by the app's embedded default and by the test fixture.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Npgsql;

namespace DbStudio.Core.Postgres;

public sealed record LocalClusterOptions
{
    /// <summary>Data folder. Created (and initialised) when missing.</summary>
    public required string DataDir { get; init; }
    /// <summary>0 = pick a free loopback port (a running cluster keeps its port).</summary>
    public int Port { get; init; }
    /// <summary>Throwaway clusters for tests: no fsync, no sync at initdb (commits still survive a server crash).</summary>
    public bool Ephemeral { get; init; }
    /// <summary>Folder with initdb/pg_ctl; null = discover.</summary>
    public string? BinDir { get; init; }
    /// <summary>Superuser password written at initdb (scram-sha-256 on TCP).</summary>
    public required string SuperuserPassword { get; init; }
    /// <summary>More server settings (e.g. "-c max_connections=2500"), after the defaults: benchmarks.</summary>
    public string? ServerOptions { get; init; }
}

public sealed class LocalCluster : IAsyncDisposable
{
    public const string Superuser = "postgres";
    private readonly LocalClusterOptions _options;
    private readonly string _binDir;
    private readonly string? _runAs;
    private bool _started;

    public int Port { get; private set; }
    public string DataDir => _options.DataDir;

    private LocalCluster(LocalClusterOptions options, string binDir, string? runAs)
    {
        _options = options;
        _binDir = binDir;
        _runAs = runAs;
    }

    /// <summary>Connection string of the cluster's superuser to the given database.</summary>
    public string SuperuserConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1", Port = Port, Username = Superuser, Password = _options.SuperuserPassword,
        Database = database, Pooling = false,
    }.ConnectionString;

    /// <summary>Initialises the data folder if needed and starts the server (or adopts one already running on it).</summary>
    public static async Task<LocalCluster> StartAsync(LocalClusterOptions options, CancellationToken ct = default)
    {
        var binDir = options.BinDir ?? PgBinaries.Find()
            ?? throw new PgBinariesNotFoundException();
        var runAs = IsRoot() ? PickUnprivilegedUser() : null;
        var cluster = new LocalCluster(options, binDir, runAs);
        await cluster.InitAndStartAsync(ct);
        return cluster;
    }

    private async Task InitAndStartAsync(CancellationToken ct)
    {
        var data = _options.DataDir;
        if (!File.Exists(Path.Combine(data, "PG_VERSION")))
        {
            Directory.CreateDirectory(data);
            PrepareOwnership(data);
            var pwFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(data))!, $".pw-{Guid.NewGuid():N}");
            await File.WriteAllTextAsync(pwFile, _options.SuperuserPassword + "\n", ct);
            PrepareOwnership(pwFile, mode: UnixFileMode.UserRead | UnixFileMode.UserWrite);
            try
            {
                var args = new List<string> { "-D", data, "-U", Superuser, "--pwfile", pwFile, "-E", "UTF8",
                    "--locale", "C.UTF-8", "--auth-local", "scram-sha-256", "--auth-host", "scram-sha-256" };
                if (_options.Ephemeral) args.Add("--no-sync");
                await RunAsync("initdb", args, ct);
            }
            finally { File.Delete(pwFile); }
        }

        var running = ReadRunningPort(data);
        if (running is int livePort && await AcceptsAsync(livePort, ct))
        {
            Port = livePort; // a cluster left running by an earlier process: adopt it
            _started = true;
            return;
        }

        Port = _options.Port != 0 ? _options.Port : FreeLoopbackPort();
        var serverOpts = $"-c listen_addresses=127.0.0.1 -p {Port} -c unix_socket_directories=''";
        // Throwaway clusters skip fsync (an OS crash may lose them) but keep synchronous_commit: a commit is in the
        // kernel's page cache before it is acknowledged, so killing PostgreSQL (pg_ctl -m immediate) loses nothing.
        // They serve a whole test run — several app instances at once, each with its pools — so they take more sessions.
        if (_options.Ephemeral)
            serverOpts += " -c fsync=off -c full_page_writes=off -c max_connections=500";
        else
            serverOpts += " -c max_connections=200";
        if (_options.ServerOptions is { Length: > 0 } more) serverOpts += " " + more;
        var log = Path.Combine(data, "server.log");
        await RunAsync("pg_ctl", ["-D", data, "-w", "-t", "60", "-l", log, "-o", serverOpts, "start"], ct);
        _started = true;
    }

    public async Task StopAsync(bool immediate = false)
    {
        if (!_started) return;
        _started = false;
        try { await RunAsync("pg_ctl", ["-D", _options.DataDir, "-w", "-t", "30", "-m", immediate ? "immediate" : "fast", "stop"], default); }
        catch (Exception) { /* already stopped */ }
    }

    /// <summary>Restarts the server on the same port (used by fault tests).</summary>
    public Task RestartAsync(bool immediate, CancellationToken ct = default) =>
        RunAsync("pg_ctl", ["-D", _options.DataDir, "-w", "-t", "60", "-m", immediate ? "immediate" : "fast", "restart"], ct);

    public async ValueTask DisposeAsync() => await StopAsync(immediate: _options.Ephemeral);

    private async Task RunAsync(string tool, IReadOnlyList<string> args, CancellationToken ct)
    {
        var exe = Path.Combine(_binDir, tool);
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (_runAs is null) psi.FileName = exe;
        else
        {
            psi.FileName = new[] { "/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser" }.FirstOrDefault(File.Exists) ?? "runuser";
            foreach (var a in new[] { "-u", _runAs, "--", exe }) psi.ArgumentList.Add(a);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {tool}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (p.ExitCode != 0)
        {
            var logTail = "";
            var log = Path.Combine(_options.DataDir, "server.log");
            if (tool == "pg_ctl" && File.Exists(log))
                logTail = string.Join('\n', File.ReadLines(log).TakeLast(15));
            throw new InvalidOperationException(
                $"{tool} failed ({p.ExitCode}): {(await stderr).Trim()} {(await stdout).Trim()}\n{logTail}".Trim());
        }
    }

    private void PrepareOwnership(string path, UnixFileMode? mode = null)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        if (mode is null && Directory.Exists(path))
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        else if (mode is not null)
            File.SetUnixFileMode(path, mode.Value);
        if (_runAs is null) return;
        // The server runs as an unprivileged user: it must own its folder, and reach it.
        using var chown = Process.Start("chown", ["-R", $"{_runAs}:", path]);
        chown.WaitForExit();
        if (chown.ExitCode != 0) throw new InvalidOperationException($"chown {_runAs} {path} failed");
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(path)); dir is not null && dir != "/"; dir = Path.GetDirectoryName(dir))
        {
            var m = File.GetUnixFileMode(dir);
            if (!m.HasFlag(UnixFileMode.OtherExecute))
                throw new InvalidOperationException(
                    $"The PostgreSQL data folder {path} is inside {dir}, which user '{_runAs}' cannot enter. " +
                    "Choose a data folder outside root's home (setting Embedded:DataDir).");
        }
    }

    private static int? ReadRunningPort(string dataDir)
    {
        var pidFile = Path.Combine(dataDir, "postmaster.pid");
        if (!File.Exists(pidFile)) return null;
        try
        {
            var lines = File.ReadAllLines(pidFile);
            return lines.Length >= 4 && int.TryParse(lines[3], out var p) ? p : null;
        }
        catch (IOException) { return null; }
    }

    private static async Task<bool> AcceptsAsync(int port, CancellationToken ct)
    {
        try
        {
            using var client = new TcpClient();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, port, cts.Token);
            return true;
        }
        catch (Exception) { return false; }
    }

    public static int FreeLoopbackPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();

    internal static bool IsRoot() => OperatingSystem.IsLinux() && geteuid() == 0;

    private static string PickUnprivilegedUser()
    {
        var passwd = File.Exists("/etc/passwd") ? File.ReadAllLines("/etc/passwd") : [];
        foreach (var name in new[] { "postgres", "nobody" })
            if (passwd.Any(l => l.StartsWith(name + ":", StringComparison.Ordinal))) return name;
        throw new InvalidOperationException("Running as root, and no 'postgres' or 'nobody' user exists to run PostgreSQL as.");
    }
}

public static class PgBinaries
{
    /// <summary>The folder holding initdb and pg_ctl: PG_BINDIR, `pg_config --bindir`, then the newest Debian/RPM install.</summary>
    public static string? Find()
    {
        static bool Has(string? d) => d is not null && File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl"));
        var env = Environment.GetEnvironmentVariable("PG_BINDIR");
        if (!string.IsNullOrEmpty(env)) return Has(env) ? env : null; // an explicit choice is final
        try
        {
            var psi = new ProcessStartInfo("pg_config", "--bindir") { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi);
            if (p is not null)
            {
                var dir = p.StandardOutput.ReadToEnd().Trim();
                p.WaitForExit();
                if (p.ExitCode == 0 && Has(dir)) return dir;
            }
        }
        catch (System.ComponentModel.Win32Exception) { /* no pg_config */ }
        foreach (var root in new[] { "/usr/lib/postgresql", "/usr/pgsql" })
        {
            if (!Directory.Exists(root)) continue;
            var best = Directory.GetDirectories(root)
                .Select(d => (dir: Path.Combine(d, "bin"), ver: int.TryParse(Path.GetFileName(d).Split('.')[0], out var v) ? v : 0))
                .Where(x => Has(x.dir)).OrderByDescending(x => x.ver).FirstOrDefault();
            if (best.dir is not null) return best.dir;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            if (Has(dir)) return dir;
        return null;
    }
}

public sealed class PgBinariesNotFoundException() : Exception(
    "DbStudio could not find PostgreSQL's server programs (initdb, pg_ctl), which it needs to start its embedded " +
    "database. Install them — on Debian or Ubuntu `sudo apt-get install postgresql`, on Fedora `sudo dnf install " +
    "postgresql-server`, on macOS `brew install postgresql@15` — or point PG_BINDIR at the folder that holds them. " +
    "To use an existing PostgreSQL server instead, set ConnectionStrings__Platform to a connection string for a role " +
    "with CREATEROLE that owns the platform database, e.g. " +
    "ConnectionStrings__Platform='Host=db;Database=dbstudio;Username=dbstudio;Password=…'.");
