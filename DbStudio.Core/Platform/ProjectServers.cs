// The PostgreSQL servers projects live on (issue 17): the server list (DbStudio:Servers), each project's server (platform
// metadata: projects."Server") and where a new project goes. Everything that connects for a project — its logins, the
// catalog reads, its roles' DDL, the change log and its listener, the Connection URL — asks here which server that is:
// the one seam. The platform's own database is on the server named "main" (ConnectionStrings:Platform, or the embedded
// cluster); with no other server configured it is the only one, and nothing is looked up.
using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Platform;

/// <summary>How a new project's server is chosen among those that accept new projects.</summary>
public enum Placement
{
    /// <summary>The server with the fewest projects.</summary>
    ProjectCount,
    /// <summary>The server with the most free connection slots (max_connections less the sessions open now).</summary>
    FreeConnections,
}

/// <summary>One PostgreSQL server of the pool (configuration).</summary>
public sealed class ServerOptions
{
    /// <summary>
    /// The platform role on that server (LOGIN CREATEROLE, not a superuser, owner of the database): it creates the projects'
    /// roles and schemas there and reads the server's catalog and change log. Not set for "main" (ConnectionStrings:Platform).
    /// </summary>
    public string? ConnectionString { get; set; }
    /// <summary>Host and port in the Connection URL of projects on this server; null = those of the connection string
    /// (for "main": DbStudio:PublicDbHost/PublicDbPort, then the platform connection's).</summary>
    public string? PublicHost { get; set; }
    public int? PublicPort { get; set; }
    /// <summary>Project connections one instance holds on this server at most (0 = DbStudio:Rest:MaxConnections).</summary>
    public int MaxConnections { get; set; }
    /// <summary>False: no new project is placed here (the platform database on a server of its own, or a server being emptied).</summary>
    public bool AcceptsNewProjects { get; set; } = true;
}

/// <summary>Settings bound from configuration section "DbStudio:Servers".</summary>
public sealed class ServersOptions
{
    public const string Section = "DbStudio:Servers";
    /// <summary>The server of the platform database; existing projects live there.</summary>
    public const string Main = "main";

    public Placement Placement { get; set; } = Placement.ProjectCount;
    /// <summary>The servers by name (lowercase letters, digits, _); "main" may be listed to set its options.</summary>
    public Dictionary<string, ServerOptions> Pool { get; set; } = [];
}

/// <summary>The project is being moved to another server and its move did not end in time (retry: a 503).</summary>
public sealed class ProjectMovingException(string message) : NpgsqlException(message);

/// <summary>A server of the pool: where it is, and the platform role's data source on it.</summary>
public sealed class DbServer
{
    internal DbServer(string name, NpgsqlDataSource dataSource, bool isPlatform, ServerOptions options, string? publicHost, int? publicPort)
    {
        Name = name;
        DataSource = dataSource;
        IsPlatform = isPlatform;
        var csb = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        Host = csb.Host ?? "localhost";
        Port = csb.Port;
        Database = csb.Database ?? "";
        SslMode = csb.SslMode;
        PublicHost = options.PublicHost ?? publicHost ?? Host;
        PublicPort = options.PublicPort ?? publicPort ?? Port;
        MaxConnections = options.MaxConnections;
        AcceptsNewProjects = options.AcceptsNewProjects;
    }

    public string Name { get; }
    /// <summary>The platform role's connections to this server: catalog reads, role DDL, the change log. Never project SQL.</summary>
    public NpgsqlDataSource DataSource { get; }
    /// <summary>Whether the platform database is this server's (one database: metadata and projects in one transaction).</summary>
    public bool IsPlatform { get; }
    public string Host { get; }
    public int Port { get; }
    public string Database { get; }
    public SslMode SslMode { get; }
    public string PublicHost { get; }
    public int PublicPort { get; }
    /// <summary>0 = DbStudio:Rest:MaxConnections.</summary>
    public int MaxConnections { get; }
    public bool AcceptsNewProjects { get; }

    public override string ToString() => $"{Name} ({Host}:{Port}/{Database})";
}

public sealed class ProjectServers : IAsyncDisposable
{
    private readonly Dictionary<string, DbServer> _byName = new(StringComparer.Ordinal);
    private readonly IDbContextFactory<PlatformDbContext> _contexts;
    private readonly Placement _placement;
    private readonly TimeProvider _clock;
    /// <summary>Each project's server, for a while after it was looked up (dropped when the project is deleted or moved).</summary>
    private readonly BoundedCache<string, DbServer> _ofProject;
    private readonly SemaphoreSlim _placing = new(1, 1);
    private Dictionary<string, long>? _counts;
    private long _countsAt;

    public ProjectServers(NpgsqlDataSource platform, IDbContextFactory<PlatformDbContext> contexts, IOptions<ServersOptions> options,
        IOptions<DbStudioOptions> studio, TimeProvider clock)
    {
        _contexts = contexts;
        _clock = clock;
        _placement = options.Value.Placement;
        _ofProject = new BoundedCache<string, DbServer>(clock, sizeLimit: 100_000);
        var pool = options.Value.Pool;
        foreach (var name in pool.Keys)
            if (!Sql.SqlText.SafeName().IsMatch(name) || name != name.ToLowerInvariant())
                throw new OptionsValidationException(ServersOptions.Section, typeof(ServersOptions),
                    [$"Server name \"{name}\" is not a lowercase identifier"]);
        var main = pool.GetValueOrDefault(ServersOptions.Main) ?? new ServerOptions();
        if (main.ConnectionString is not null)
            throw new OptionsValidationException(ServersOptions.Section, typeof(ServersOptions),
                [$"Server \"{ServersOptions.Main}\" is the platform database's (ConnectionStrings:Platform): it takes no ConnectionString"]);
        Platform = new DbServer(ServersOptions.Main, platform, isPlatform: true, main, studio.Value.PublicDbHost, studio.Value.PublicDbPort);
        _byName[Platform.Name] = Platform;
        foreach (var (name, server) in pool.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (name == ServersOptions.Main) continue;
            if (string.IsNullOrWhiteSpace(server.ConnectionString))
                throw new OptionsValidationException(ServersOptions.Section, typeof(ServersOptions), [$"Server \"{name}\" has no ConnectionString"]);
            var source = PlatformLoginSource(server.ConnectionString, "server-" + name);
            _byName[name] = new DbServer(name, source, isPlatform: false, server, null, null);
        }
        All = [.. _byName.Values];
        if (!All.Any(s => s.AcceptsNewProjects))
            throw new OptionsValidationException(ServersOptions.Section, typeof(ServersOptions), ["No server accepts new projects"]);
    }

    /// <summary>
    /// The platform login's data source on a server. Its statements (the change log's reads, above all: each stream's
    /// every batch) are prepared once they repeat, so PostgreSQL does not parse and plan them again for each read.
    /// </summary>
    public static NpgsqlDataSource PlatformLoginSource(string connectionString, string name) =>
        new NpgsqlDataSourceBuilder(connectionString) { Name = name, ConnectionStringBuilder = { MaxAutoPrepare = 64, AutoPrepareMinUsages = 2 } }.Build();

    /// <summary>The platform database's server ("main").</summary>
    public DbServer Platform { get; }
    /// <summary>Every configured server, "main" first.</summary>
    public IReadOnlyList<DbServer> All { get; }

    /// <summary>The configured server of that name; a project's server that is no longer configured is a configuration error.</summary>
    public DbServer Named(string name) => _byName.TryGetValue(name, out var s) ? s
        : throw new InvalidOperationException($"PostgreSQL server \"{name}\" is not configured (DbStudio:Servers:Pool)");

    /// <summary>
    /// The server project <paramref name="projectId"/> lives on ("main" for a project that does not exist). While the
    /// project is being moved this waits for the move to end (up to <see cref="MoveWait"/>, then
    /// <see cref="ProjectMovingException"/>), unless <paramref name="waitWhileMoving"/> is false: then it is the server
    /// the project is leaving, which is read-only meanwhile (the change log's readers).
    /// </summary>
    public async ValueTask<DbServer> OfAsync(string projectId, CancellationToken ct = default, bool waitWhileMoving = true)
    {
        if (_byName.Count == 1 && _moving.IsEmpty) return Platform;
        if (_ofProject.TryGet(projectId, out var cached)) return cached;
        var deadline = _clock.GetTimestamp();
        while (true)
        {
            var resumed = _moving.GetOrAdd(projectId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            await using (var db = await _contexts.CreateDbContextAsync(ct))
            {
                var row = await db.Projects.AsNoTracking().Where(p => p.Id == projectId)
                    .Select(p => new { p.Server, p.MovingTo }).SingleOrDefaultAsync(ct);
                if (row is null || row.MovingTo is null || !waitWhileMoving)
                {
                    if (row?.MovingTo is null) _moving.TryRemove(projectId, out _);
                    if (row is null) return Platform; // not cached: a project made later gets its own answer
                    var server = Named(row.Server);
                    if (row.MovingTo is null) _ofProject.Set(projectId, server, TimeSpan.FromMinutes(10));
                    return server;
                }
            }
            if (_clock.GetElapsedTime(deadline) > MoveWait)
                throw new ProjectMovingException($"Project {projectId} is being moved to another server; try again shortly");
            // Woken by the move's end (Resume, from its signal), or looks again shortly (a signal that got lost).
            await Task.WhenAny(resumed, Task.Delay(TimeSpan.FromMilliseconds(200), _clock, ct));
            ct.ThrowIfCancellationRequested();
        }
    }

    /// <summary>How long a request waits for its project's move to end.</summary>
    public TimeSpan MoveWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Projects being moved (or just looked up while moving): their waiters, woken when the move ends.</summary>
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _moving = new();

    /// <summary>Forgets where a project is (it was deleted, or is being moved, or was moved to another server).</summary>
    public void Forget(string projectId) => _ofProject.Remove(projectId);

    /// <summary>The project's move ended (moved, or given up): its waiting requests look again at once.</summary>
    public void Resume(string projectId)
    {
        _ofProject.Remove(projectId);
        if (_moving.TryRemove(projectId, out var tcs)) tcs.TrySetResult();
    }

    /// <summary>The projects on <paramref name="server"/>, from platform metadata (start-up passes, the connection guard).</summary>
    public async Task<string[]> ProjectsOnAsync(DbServer server, CancellationToken ct = default)
    {
        await using var db = await _contexts.CreateDbContextAsync(ct);
        return await db.Projects.AsNoTracking().Where(p => p.Server == server.Name).Select(p => p.Id).ToArrayAsync(ct);
    }

    /// <summary>Where a new project goes: among the servers that accept new projects, by DbStudio:Servers:Placement.</summary>
    public async Task<DbServer> PlaceAsync(CancellationToken ct = default)
    {
        var candidates = All.Where(s => s.AcceptsNewProjects).ToList();
        if (candidates.Count == 1) return candidates[0];
        return _placement == Placement.FreeConnections ? await MostFreeAsync(candidates, ct) : await FewestProjectsAsync(candidates, ct);
    }

    /// <summary>
    /// By project count: the counts are read from metadata at most every 30 s (one grouped count, not a pass per creation)
    /// and counted on here in between; other instances' creations show up at the next read.
    /// </summary>
    private async Task<DbServer> FewestProjectsAsync(List<DbServer> candidates, CancellationToken ct)
    {
        await _placing.WaitAsync(ct);
        try
        {
            if (_counts is null || _clock.GetElapsedTime(_countsAt) > TimeSpan.FromSeconds(30))
            {
                await using var db = await _contexts.CreateDbContextAsync(ct);
                _counts = await db.Projects.AsNoTracking().GroupBy(p => p.Server).Select(g => new { g.Key, Count = g.LongCount() })
                    .ToDictionaryAsync(x => x.Key, x => x.Count, ct);
                _countsAt = _clock.GetTimestamp();
            }
            var chosen = candidates.MinBy(s => _counts.GetValueOrDefault(s.Name))!;
            _counts[chosen.Name] = _counts.GetValueOrDefault(chosen.Name) + 1;
            return chosen;
        }
        finally { _placing.Release(); }
    }

    /// <summary>By free connections: asks each server now; one that does not answer is passed over.</summary>
    private static async Task<DbServer> MostFreeAsync(List<DbServer> candidates, CancellationToken ct)
    {
        var free = await Task.WhenAll(candidates.Select(async s =>
        {
            try
            {
                await using var cmd = s.DataSource.CreateCommand(
                    "SELECT current_setting('max_connections')::int - (SELECT count(*) FROM pg_stat_activity)::int");
                return (Server: s, Free: (int)(await cmd.ExecuteScalarAsync(ct))!);
            }
            catch (NpgsqlException) { return (Server: s, Free: int.MinValue); }
        }));
        var best = free.MaxBy(f => f.Free);
        return best.Free == int.MinValue ? throw new NpgsqlException("No PostgreSQL server that accepts new projects answers") : best.Server;
    }

    public async ValueTask DisposeAsync()
    {
        _ofProject.Dispose();
        foreach (var s in All.Where(s => !s.IsPlatform)) await s.DataSource.DisposeAsync();
    }
}
