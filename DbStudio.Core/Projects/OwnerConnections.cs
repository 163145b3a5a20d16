// Connections that log in as a project's owner role, for person-written SQL (console, assistant, the Schema tab's
// DDL) — never the platform pool (DESIGN §2). They are kept by the one keyed pool (ProjectConnectionPool) with REST's,
// at most Console:PoolSize per project, and reset (ROLLBACK, DISCARD ALL) before another run uses them: whatever a
// script left behind — a transaction, SET, a temporary table, LISTEN, a role — is gone, as with Npgsql's own pool.
using DbStudio.Core.Platform;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

/// <summary>A console connection, rented from the pool; disposing it resets it and gives it back.</summary>
public sealed class OwnerConnection(NpgsqlConnection connection, ProjectConnectionPool pool) : IAsyncDisposable
{
    public NpgsqlConnection Connection { get; } = connection;

    public async ValueTask DisposeAsync()
    {
        var reusable = false;
        if (Connection.FullState == System.Data.ConnectionState.Open)
        {
            try
            {
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                // Two commands: DISCARD ALL cannot run inside the implicit transaction of a multi-statement batch.
                await using (var rollback = new NpgsqlCommand("ROLLBACK", Connection))
                    await rollback.ExecuteNonQueryAsync(deadline.Token);
                await using (var discard = new NpgsqlCommand("DISCARD ALL", Connection))
                    await discard.ExecuteNonQueryAsync(deadline.Token);
                reusable = true;
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException) { }
        }
        pool.Return(Connection, reusable);
    }
}

public sealed class OwnerConnections(IDbContextFactory<PlatformDbContext> contexts, SecretProtector protector, ProjectServers servers,
    ServerPools pools, IOptions<DbStudioOptions> options)
{
    private readonly DbStudioOptions _options = options.Value;
    private PoolPolicy? _policy;

    /// <summary>postgresql://proj_{id}_owner:password@host:port/database, on the project's server — works with psql as it is.</summary>
    public static string ConnectionUrl(string id, string password, DbServer server)
    {
        var host = server.PublicHost;
        if (host.Contains(':') && !host.StartsWith('[')) host = $"[{host}]";
        return $"postgresql://{Uri.EscapeDataString(ProjectNaming.OwnerRole(id))}:{Uri.EscapeDataString(password)}@{host}:{server.PublicPort}/{Uri.EscapeDataString(server.Database)}";
    }

    /// <summary>A connection logged in as proj_{id}_owner with search_path = proj_{id}; dispose it to give it back.</summary>
    public async Task<OwnerConnection> OpenAsync(string id, CancellationToken ct)
    {
        // One policy for every project: nothing is kept per project outside the pool's keys in use.
        var policy = _policy ??= new PoolPolicy(_options.Console.PoolSize, _options.Console.PoolIdle, TimeSpan.FromSeconds(15), null,
            (key, source, token) => OpenNewAsync(key.Project, source, token));
        var pool = pools.For(await servers.OfAsync(id, ct)); // the project's server's pool
        var conn = await pool.RentAsync(new PoolKey(id, ProjectNaming.OwnerRole(id)), policy, ct);
        return new OwnerConnection(conn, pool);
    }

    /// <summary>Closes the project's console connections (project deleted, password changed).</summary>
    public void Forget(string id)
    {
        var login = ProjectNaming.OwnerRole(id);
        pools.Forget(id, key => key.Login == login);
    }

    private async Task<NpgsqlConnection> OpenNewAsync(string id, PoolSource source, CancellationToken ct)
    {
        // The secret is read once while the project is active (the key's source keeps the connection string), and the
        // data source goes with the key (RestConnections.BuildSource: no type loading; the console reads text).
        var cs = source.ConnectionString ?? await ConnectionStringAsync(id);
        var conn = source.Get(cs, RestConnections.BuildSource).CreateConnection();
        try
        {
            await conn.OpenAsync(ct);
            return conn;
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    private async Task<string> ConnectionStringAsync(string id)
    {
        string password;
        await using (var db = await contexts.CreateDbContextAsync())
        {
            var secret = await db.ProjectSecrets.AsNoTracking()
                .Where(s => s.ProjectId == id && s.Kind == ProjectSecretKind.OwnerPassword)
                .Select(s => s.Protected).SingleOrDefaultAsync()
                ?? throw new KeyNotFoundException($"project {id} does not exist");
            password = protector.Unprotect(secret);
        }
        var server = await servers.OfAsync(id);
        return new NpgsqlConnectionStringBuilder
        {
            Host = server.Host, Port = server.Port, Database = server.Database, SslMode = server.SslMode,
            Username = ProjectNaming.OwnerRole(id), Password = password,
            SearchPath = ProjectNaming.Schema(id),
            ApplicationName = "dbstudio-console",
            // ProjectConnectionPool pools (and resets a connection before it is used again).
            Pooling = false,
            Timeout = 15,
            // The app enforces its own deadline; Npgsql must not cancel first.
            CommandTimeout = 0,
            IncludeErrorDetail = true,
        }.ConnectionString;
    }
}
