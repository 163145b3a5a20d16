// Connections that log in as a project's owner role: small per-project pools, dropped when idle.
// Person-written SQL (console, assistant) runs only here, never on the platform pool (DESIGN §2).
using System.Collections.Concurrent;
using DbStudio.Core.Platform;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

public sealed class OwnerConnections : IAsyncDisposable
{
    private sealed class Entry(NpgsqlDataSource source)
    {
        public NpgsqlDataSource Source { get; } = source;
        public long LastUsedTicks = Environment.TickCount64;
    }

    private readonly ConcurrentDictionary<string, Lazy<Task<Entry>>> _pools = new();
    private readonly IDbContextFactory<PlatformDbContext> _contexts;
    private readonly SecretProtector _protector;
    private readonly NpgsqlConnectionStringBuilder _platform;
    private readonly DbStudioOptions _options;
    private readonly Timer _trim;

    public OwnerConnections(IDbContextFactory<PlatformDbContext> contexts, SecretProtector protector, NpgsqlDataSource platform,
        IOptions<DbStudioOptions> options)
    {
        _contexts = contexts;
        _protector = protector;
        _platform = new NpgsqlConnectionStringBuilder(platform.ConnectionString);
        _options = options.Value;
        var period = _options.Console.PoolIdle;
        _trim = new Timer(_ => TrimIdle(), null, period, period);
    }

    /// <summary>postgresql://proj_{id}_owner:password@host:port/database — works with psql as it is.</summary>
    public string ConnectionUrl(string id, string password)
    {
        var host = _options.PublicDbHost ?? _platform.Host ?? "localhost";
        var port = _options.PublicDbPort ?? _platform.Port;
        if (host.Contains(':') && !host.StartsWith('[')) host = $"[{host}]";
        return $"postgresql://{Uri.EscapeDataString(ProjectNaming.OwnerRole(id))}:{Uri.EscapeDataString(password)}@{host}:{port}/{Uri.EscapeDataString(_platform.Database ?? "")}";
    }

    /// <summary>Opens a connection logged in as proj_{id}_owner with search_path = proj_{id}.</summary>
    public async Task<NpgsqlConnection> OpenAsync(string id, CancellationToken ct)
    {
        var entry = await _pools.GetOrAdd(id, key => new Lazy<Task<Entry>>(() => CreateAsync(key))).Value;
        Interlocked.Exchange(ref entry.LastUsedTicks, Environment.TickCount64);
        return await entry.Source.OpenConnectionAsync(ct);
    }

    /// <summary>Drops the project's pool (project deleted, password changed).</summary>
    public void Forget(string id)
    {
        if (_pools.TryRemove(id, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
            _ = lazy.Value.Result.Source.DisposeAsync().AsTask();
    }

    private async Task<Entry> CreateAsync(string id)
    {
        try
        {
            string password;
            await using (var db = await _contexts.CreateDbContextAsync())
            {
                var secret = await db.ProjectSecrets.AsNoTracking()
                    .Where(s => s.ProjectId == id && s.Kind == ProjectSecretKind.OwnerPassword)
                    .Select(s => s.Protected).SingleOrDefaultAsync()
                    ?? throw new KeyNotFoundException($"project {id} does not exist");
                password = _protector.Unprotect(secret);
            }
            var csb = new NpgsqlConnectionStringBuilder
            {
                Host = _platform.Host, Port = _platform.Port, Database = _platform.Database,
                Username = ProjectNaming.OwnerRole(id), Password = password,
                SearchPath = ProjectNaming.Schema(id),
                ApplicationName = "dbstudio-console",
                MinPoolSize = 0, MaxPoolSize = _options.Console.PoolSize,
                ConnectionIdleLifetime = Math.Max(1, (int)_options.Console.PoolIdle.TotalSeconds),
                ConnectionPruningInterval = Math.Max(1, Math.Min(10, (int)_options.Console.PoolIdle.TotalSeconds)),
                Timeout = 15,
                // The app enforces its own deadline; Npgsql must not cancel first.
                CommandTimeout = 0,
                IncludeErrorDetail = true,
            };
            return new Entry(NpgsqlDataSource.Create(csb.ConnectionString));
        }
        catch
        {
            _pools.TryRemove(id, out _);
            throw;
        }
    }

    private void TrimIdle()
    {
        var cutoff = Environment.TickCount64 - (long)(_options.Console.PoolIdle.TotalMilliseconds * 10);
        foreach (var (id, lazy) in _pools)
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully && Interlocked.Read(ref lazy.Value.Result.LastUsedTicks) < cutoff)
                Forget(id);
    }

    public async ValueTask DisposeAsync()
    {
        await _trim.DisposeAsync();
        foreach (var id in _pools.Keys) Forget(id);
    }
}
