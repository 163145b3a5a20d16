// The connections REST requests (and the panel's grid, access DDL, capture DDL) run on: the project's four REST logins
// (ProjectLogins: proj_{id}_rest_anon|user|admin|owner, each a member of exactly one of the project's roles, which it
// switches to — SET ROLE — once when the connection is opened). So:
//  - code the project wrote (a trigger, a column default, a function in a policy) that runs `RESET ROLE` or `SET ROLE`
//    falls back to a role that can do nothing, or stays where it was; it can never reach the platform role or another
//    project (it could, when REST ran on the platform's own login, which is a member of every project's roles);
//  - a request needs no role switch of its own: PostgreSQL plans and runs the statement alone, as a hand-written
//    endpoint would. Signed-in users' claims are still set per request (transaction-local set_config).
// The connections are kept by the one keyed pool (ProjectConnectionPool) with one budget for all projects; this class
// says how a REST connection is opened (which login, its session settings) and keeps the logins' connection strings.
using System.Collections.Concurrent;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

public sealed class RestConnections(ServerPools pool, Platform.ProjectServers servers, ProjectLogins logins,
    IOptions<DbStudioOptions> options)
{
    private readonly KeyedOnce<string> _baseConnectionStrings = new();
    private readonly RestOptions _options = options.Value.Rest;
    private readonly ConcurrentDictionary<(string, RestRole), PoolPolicy> _policies = new();

    /// <summary>The login role REST uses for <paramref name="role"/> in project <paramref name="id"/>.</summary>
    public static string LoginRole(string id, RestRole role) => ProjectLogins.LoginRole(id, role);

    /// <summary>The project role a REST connection for <paramref name="role"/> acts as.</summary>
    public static string ActingRole(string id, RestRole role) => ProjectLogins.ActingRole(id, role);

    public static IEnumerable<string> LoginRoles(string id) => ProjectLogins.LoginRoles(id);

    /// <summary>Taken (transaction-scoped) by whatever grants or revokes the logins' CONNECT: one pg_database row.</summary>
    public const string LoginsLockSql = ProjectLogins.LoginsLockSql;

    /// <summary>Every connection stayed busy for the whole queue timeout (nothing is broken: retry later).</summary>
    public sealed class BusyException(string message) : NpgsqlException(message);

    /// <summary>Open physical connections (idle and busy) of the shared pool, for tests and metrics.</summary>
    public int OpenCount => pool.OpenCount;

    /// <summary>
    /// A connection of project <paramref name="id"/>, already acting as <paramref name="role"/>; give it back with
    /// <see cref="Return"/> (a broken one is closed there).
    /// </summary>
    public async Task<NpgsqlConnection> RentAsync(string id, RestRole role, CancellationToken ct)
    {
        var policy = _policies.GetOrAdd((id, role), k => new PoolPolicy(_options.EffectiveLoginConnectionLimit, _options.PoolIdle,
            _options.ProjectQueueTimeout, token => OpenNewAsync(k.Item1, k.Item2, renewed: false, token)));
        // The project's server's pool: each server has a budget of its own. A project being moved waits for its move.
        Platform.DbServer server;
        try { server = await servers.OfAsync(id, ct); }
        catch (Platform.ProjectMovingException e) { throw new BusyException(e.Message); }
        try { return await pool.RentAsync(server, new PoolKey(id, LoginRole(id, role)), policy, ct); }
        catch (ProjectConnectionPool.BusyException)
        {
            throw new BusyException($"All {_options.MaxConnections} REST connections are busy");
        }
    }

    /// <summary>Gives a rented connection back: kept for its project and kind when healthy, else closed.</summary>
    public void Return(NpgsqlConnection conn) => pool.Return(conn);

    private async Task<NpgsqlConnection> OpenNewAsync(string id, RestRole role, bool renewed, CancellationToken ct)
    {
        var cs = await ConnectionStringAsync(id, role, ct);
        var conn = new NpgsqlConnection(cs);
        try
        {
            await conn.OpenAsync(ct);
            await RestoreRoleAsync(conn, id, role, ct);
            return conn;
        }
        catch (PostgresException e) when (!renewed && e.SqlState is PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification)
        {
            // The login was changed or dropped behind our back: make it again (new password) and retry once.
            await conn.DisposeAsync();
            _baseConnectionStrings.Forget(id);
            await logins.EnsureAsync(id, renew: true, ct);
            return await OpenNewAsync(id, role, renewed: true, ct);
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    private async Task<string> ConnectionStringAsync(string id, RestRole role, CancellationToken ct) =>
        new NpgsqlConnectionStringBuilder(await _baseConnectionStrings.GetAsync(id, BaseConnectionStringAsync, ct)) { Username = LoginRole(id, role) }.ConnectionString;

    private async Task<string> BaseConnectionStringAsync(string id)
    {
        var password = await logins.EnsureAsync(id, renew: false, CancellationToken.None);
        var server = await servers.OfAsync(id); // the logins are roles of the project's server
        return new NpgsqlConnectionStringBuilder
        {
            Host = server.Host, Port = server.Port, Database = server.Database, SslMode = server.SslMode,
            Password = password,
            ApplicationName = "dbstudio-rest",
            // ProjectConnectionPool pools; a connection keeps its session — the role, the settings below and its
            // auto-prepared statements — for its whole life.
            Pooling = false,
            MaxAutoPrepare = 256,
            AutoPrepareMinUsages = 2,
            Options = $"-c statement_timeout={(int)_options.StatementTimeout.TotalMilliseconds}",
            Timezone = "UTC",
        }.ConnectionString;
    }

    /// <summary>Sets a connection to the role its kind acts as (on opening, and after code of the project's may have changed it).</summary>
    public static async Task RestoreRoleAsync(NpgsqlConnection conn, string id, RestRole role, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SET ROLE {SqlText.Ident(ActingRole(id, role))}", conn);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Runs platform-generated SQL inside the project as its owner — on the project's own login (rest_owner, acting as
    /// the owner), never on the platform's: whatever code of the project's it sets off (policy functions, triggers,
    /// defaults) runs in a session whose session_user is the project's, with the project's rights only.
    /// </summary>
    public async Task<T> AsOwnerAsync<T>(string id, Func<NpgsqlConnection, Task<T>> work, CancellationToken ct)
    {
        var conn = await RentAsync(id, RestRole.Owner, ct);
        try
        {
            // Project code that ran on this connection before may have changed its role.
            await RestoreRoleAsync(conn, id, RestRole.Owner, ct);
            return await work(conn);
        }
        catch (PostgresException)
        {
            try { conn.UnprepareAll(); } catch (Exception e) when (e is InvalidOperationException or NpgsqlException) { }
            throw;
        }
        finally { Return(conn); }
    }

    /// <summary>A connection of the project's own (not pooled, not counted), acting as <paramref name="role"/>: for deletion.</summary>
    public async Task<NpgsqlConnection> OpenDedicatedAsync(string id, RestRole role, CancellationToken ct) =>
        await OpenNewAsync(id, role, renewed: false, ct);

    /// <summary>Closes the project's idle REST connections and retires its busy ones (project deleted).</summary>
    public void Forget(string id)
    {
        _baseConnectionStrings.Forget(id);
        foreach (var role in ProjectLogins.Roles) _policies.TryRemove((id, role), out _);
        var restLogins = LoginRoles(id).ToHashSet();
        pool.Forget(id, key => restLogins.Contains(key.Login));
    }

    /// <summary>Closes every idle connection (the server restarted: they are all broken).</summary>
    public void ClearAll() => pool.ClearAll();
}
