// The connections REST requests (and the panel's grid, access DDL, capture DDL) run on: the project's two REST logins
// (ProjectLogins: proj_{id}_rest for anonymous callers, end users and admin end users; proj_{id}_rest_owner for the
// DB_API_KEY and the platform's own work inside the project). So:
//  - code the project wrote (a trigger, a column default, a function in a policy) that runs `RESET ROLE` falls back to a
//    login that can do nothing, and `SET ROLE` reaches at most a sibling role of the same project; it can never reach
//    the platform role or another project;
//  - a REST request takes its role inside its own transaction (RoleSetting: set_config('role', …, true) in the prelude,
//    the same round trip as the statement), so a connection of proj_{id}_rest serves every kind of caller of its
//    project, whatever role the last request's code left the session in. Callers that need the session itself in a
//    role (stream visibility checks, the owner's work) get it switched when they rent (RentAsync).
// The connections are kept by the one keyed pool (ProjectConnectionPool) with one budget for all projects; this class
// says how a REST connection is opened (which login, its session settings).
using DbStudio.Core.Sql;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

public sealed class RestConnections(ServerPools pool, Platform.ProjectServers servers, ProjectLogins logins,
    IOptions<DbStudioOptions> options)
{
    private readonly RestOptions _options = options.Value.Rest;
    private PoolPolicy[]? _policies;

    /// <summary>One policy per role for every project: nothing is kept per project outside the pool's keys in use.</summary>
    private PoolPolicy Policy(RestRole role)
    {
        var all = _policies ??= ProjectLogins.Roles.Select(r => new PoolPolicy(_options.EffectiveLoginConnectionLimit, _options.PoolIdle,
            _options.ProjectQueueTimeout, null, (key, source, ct) => OpenNewAsync(key.Project, r, source, ct))).ToArray();
        return all[(int)role];
    }

    /// <summary>The login role REST uses for <paramref name="role"/> in project <paramref name="id"/>.</summary>
    public static string LoginRole(string id, RestRole role) => ProjectLogins.LoginRole(id, role);

    /// <summary>The project role a REST connection for <paramref name="role"/> acts as.</summary>
    public static string ActingRole(string id, RestRole role) => ProjectLogins.ActingRole(id, role);

    public static IEnumerable<string> LoginRoles(string id) => ProjectLogins.LoginRoles(id);

    /// <summary>The per-kind REST logins of versions before issue 17.</summary>
    public static IEnumerable<string> LegacyLoginRoles(string id) => ProjectLogins.LegacyLoginRoles(id);

    /// <summary>Taken (transaction-scoped) by whatever grants or revokes the logins' CONNECT: one pg_database row.</summary>
    public static readonly string LoginsLockSql = ProjectLogins.LoginsLockSql;

    /// <summary>Every connection stayed busy for the whole queue timeout (nothing is broken: retry later).</summary>
    public sealed class BusyException(string message) : NpgsqlException(message);

    /// <summary>Open physical connections (idle and busy) of the shared pool, for tests and metrics.</summary>
    public int OpenCount => pool.OpenCount;

    /// <summary>
    /// A connection of project <paramref name="id"/>, already acting as <paramref name="role"/> for its whole session; give
    /// it back with <see cref="Return"/> (a broken one is closed there).
    /// </summary>
    public async Task<NpgsqlConnection> RentAsync(string id, RestRole role, CancellationToken ct)
    {
        var conn = await RentForRequestAsync(id, role, ct);
        if (!ProjectLogins.IsShared(role)) return conn; // the owner's login acts as the owner from its opening
        try
        {
            await RestoreRoleAsync(conn, id, role, ct);
            return conn;
        }
        catch
        {
            Return(conn);
            throw;
        }
    }

    /// <summary>
    /// A connection of project <paramref name="id"/>'s login for <paramref name="role"/>, whose session may act as any role
    /// the login may take: the caller sets the role in each transaction it runs (<see cref="RoleSetting"/>).
    /// </summary>
    public async ValueTask<NpgsqlConnection> RentForRequestAsync(string id, RestRole role, CancellationToken ct)
    {
        // The project's server's pool: each server has a budget of its own. A project being moved waits for its move.
        Platform.DbServer server;
        try { server = await servers.OfAsync(id, ct); }
        catch (Platform.ProjectMovingException e) { throw new BusyException(e.Message); }
        try { return await pool.RentAsync(server, new PoolKey(id, LoginRole(id, role)), Policy(role), ct); }
        catch (ProjectConnectionPool.BusyException)
        {
            throw new BusyException($"All {pool.For(server).Budget} REST connections of server {server.Name} are busy");
        }
    }

    /// <summary>
    /// The select-list item that makes the transaction act as <paramref name="role"/> (SET LOCAL ROLE), with the role's
    /// name as its parameter: it ends with the transaction, so nothing a request's code does to the session role outlives it.
    /// </summary>
    public static (string Sql, NpgsqlParameter Parameter) RoleSetting(string id, RestRole role, int parameter) =>
        ($"pg_catalog.set_config('role', ${parameter}, true)", new NpgsqlParameter { Value = ActingRole(id, role), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });

    /// <summary>Gives a rented connection back: kept for its project and kind when healthy, else closed.</summary>
    public void Return(NpgsqlConnection conn) => pool.Return(conn);

    /// <summary>Closes a rented connection instead of keeping it: person-written SQL ran on it (the SQL tab's "run as").</summary>
    public void Discard(NpgsqlConnection conn) => pool.Return(conn, reusable: false);

    private async Task<NpgsqlConnection> OpenNewAsync(string id, RestRole role, PoolSource source, CancellationToken ct)
    {
        // The project's secret is read once while it is active (the key's source keeps the connection string).
        var cs = source.ConnectionString ?? await ConnectionStringAsync(id, role, failedPassword: null, ct);
        for (var attempt = 1; ; attempt++)
        {
            var conn = source.Get(cs, BuildSource).CreateConnection();
            try
            {
                await conn.OpenAsync(ct);
                // The owner's login acts as the owner for its whole session; the shared login's role is set per use.
                if (!ProjectLogins.IsShared(role)) await RestoreRoleAsync(conn, id, role, ct);
                return conn;
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification)
            {
                // The login's password is not the one we hold: another instance renewed it, a move made the logins anew on
                // another server, or they were dropped behind our back. Take the kept password if it changed, else make a
                // new one (ProjectLogins renews only when the kept one is the one that failed, so two instances that fail
                // at once do not take turns invalidating each other's), and try again, a few times.
                await conn.DisposeAsync();
                if (attempt == 3)
                    throw new BusyException($"The REST login of project {id} refused its password {attempt} times (it is being changed); retry shortly");
                cs = await ConnectionStringAsync(id, role, failedPassword: new NpgsqlConnectionStringBuilder(cs).Password, ct);
            }
            catch
            {
                await conn.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>
    /// A data source of the project's login, not registered in Npgsql's static table (the pool disposes it with the key).
    /// No type loading: REST reads built-in types only (everything else arrives as JSON text), and loading would read
    /// every type of the database — two per table of every project — on each project's first connection.
    /// </summary>
    internal static NpgsqlDataSource BuildSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConfigureTypeLoading(t => t.EnableTypeLoading(false));
        return builder.Build();
    }

    private async Task<string> ConnectionStringAsync(string id, RestRole role, string? failedPassword, CancellationToken ct)
    {
        // The fast path reads the kept password; logging in then says whether the logins exist with it.
        var password = failedPassword is not null ? await logins.EnsureAsync(id, renew: true, ct, failedPassword)
            : await logins.PasswordAsync(id, ct) ?? await logins.EnsureAsync(id, renew: false, ct);
        var server = await servers.OfAsync(id, ct); // the logins are roles of the project's server
        return new NpgsqlConnectionStringBuilder
        {
            Host = server.Host, Port = server.Port, Database = server.Database, SslMode = server.SslMode,
            Username = LoginRole(id, role), Password = password,
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

    /// <summary>Runs <paramref name="work"/> on a connection of the project's own (not pooled, not counted), acting as <paramref name="role"/>: for deletion.</summary>
    public async Task WithDedicatedAsync(string id, RestRole role, Func<NpgsqlConnection, Task> work, CancellationToken ct)
    {
        using var source = new PoolSource();
        await using var conn = await OpenNewAsync(id, role, source, ct);
        await work(conn);
    }

    /// <summary>Closes the project's idle REST connections and retires its busy ones (project deleted).</summary>
    public void Forget(string id)
    {
        var restLogins = LoginRoles(id).ToHashSet();
        pool.Forget(id, key => restLogins.Contains(key.Login));
    }

    /// <summary>Closes every idle connection (the server restarted: they are all broken).</summary>
    public void ClearAll() => pool.ClearAll();
}
