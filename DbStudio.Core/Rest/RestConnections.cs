// The connections REST requests (and the panel's grid) run on. Each project has four login roles of its own, one per
// caller kind — proj_{id}_rest_anon, _rest_user, _rest_admin, _rest_owner: LOGIN NOINHERIT, no privilege of their
// own, each a member of exactly one of the project's roles, which it switches to (SET ROLE) once when the connection
// is opened. So:
//  - code the project wrote (a trigger, a column default, a function in a policy) that runs `RESET ROLE` or `SET ROLE`
//    falls back to a role that can do nothing, or stays where it was; it can never reach the platform role or another
//    project (it could, when REST ran on the platform's own login, which is a member of every project's roles);
//  - a request needs no role switch of its own: PostgreSQL plans and runs the statement alone, as a hand-written
//    endpoint would. Signed-in users' claims are still set per request (transaction-local set_config).
// The roles are created on first use (also for projects made before they existed); their password is generated,
// kept encrypted with the project's other secrets and never shown. Pools are per project and kind, sized to the
// project's concurrency cap, and dropped when the project has been idle for a while.
using System.Collections.Concurrent;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Rest;

/// <summary>Which of the project's roles a REST connection acts as.</summary>
public enum RestRole { Anon, User, UserAdmin, Owner }

public sealed class RestConnections : IAsyncDisposable
{
    private sealed class Pool(NpgsqlDataSource source)
    {
        public NpgsqlDataSource Source { get; } = source;
        public long LastUsedTicks = Environment.TickCount64;
    }

    private static readonly RestRole[] Roles = [RestRole.Anon, RestRole.User, RestRole.UserAdmin, RestRole.Owner];

    private readonly ConcurrentDictionary<(string Project, RestRole Role), Lazy<Task<Pool>>> _pools = new();
    private readonly NpgsqlDataSource _platform;
    private readonly NpgsqlConnectionStringBuilder _platformCsb;
    private readonly SecretProtector _protector;
    private readonly RestOptions _options;
    private readonly Timer _trim;

    public RestConnections(NpgsqlDataSource platform, SecretProtector protector, IOptions<DbStudioOptions> options)
    {
        _platform = platform;
        _platformCsb = new NpgsqlConnectionStringBuilder(platform.ConnectionString);
        _protector = protector;
        _options = options.Value.Rest;
        var period = TimeSpan.FromSeconds(Math.Max(1, _options.PoolIdle.TotalSeconds / 4));
        _trim = new Timer(_ => TrimIdle(), null, period, period);
    }

    /// <summary>The login role REST uses for <paramref name="role"/> in project <paramref name="id"/>.</summary>
    public static string LoginRole(string id, RestRole role) => $"proj_{id}_rest_" + role switch
    {
        RestRole.Anon => "anon", RestRole.User => "user", RestRole.UserAdmin => "admin", _ => "owner",
    };

    /// <summary>The project role a REST connection for <paramref name="role"/> acts as.</summary>
    public static string ActingRole(string id, RestRole role) => role switch
    {
        RestRole.Anon => ProjectNaming.AnonRole(id),
        RestRole.User => ProjectNaming.UserRole(id),
        RestRole.UserAdmin => ProjectNaming.UserAdminRole(id),
        _ => ProjectNaming.OwnerRole(id),
    };

    public static IEnumerable<string> LoginRoles(string id) => Roles.Select(r => LoginRole(id, r));

    /// <summary>Taken (transaction-scoped) by whatever grants or revokes the logins' CONNECT: one pg_database row.</summary>
    public const string LoginsLockSql = "SELECT pg_advisory_xact_lock(hashtext('dbstudio-rest-logins'));";

    /// <summary>An open connection of project <paramref name="id"/>, already acting as <paramref name="role"/>.</summary>
    public Task<NpgsqlConnection> OpenAsync(string id, RestRole role, CancellationToken ct) => OpenAsync(id, role, renewed: false, ct);

    private async Task<NpgsqlConnection> OpenAsync(string id, RestRole role, bool renewed, CancellationToken ct)
    {
        var key = (id, role);
        var lazy = _pools.GetOrAdd(key, k => new Lazy<Task<Pool>>(() => CreateAsync(k.Project, k.Role)));
        Pool pool;
        try { pool = await lazy.Value.WaitAsync(ct); }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            _pools.TryRemove(new KeyValuePair<(string, RestRole), Lazy<Task<Pool>>>(key, lazy));
            throw;
        }
        Interlocked.Exchange(ref pool.LastUsedTicks, Environment.TickCount64);
        try
        {
            return await pool.Source.OpenConnectionAsync(ct);
        }
        catch (PostgresException e) when (!renewed && e.SqlState is PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification)
        {
            // The login was changed or dropped behind our back: make it again (new password) and retry once.
            Forget(id);
            await EnsureLoginsAsync(id, renew: true, ct);
            return await OpenAsync(id, role, renewed: true, ct);
        }
    }

    /// <summary>Sets a connection back to the role its pool acts as, after code of the project's may have changed it.</summary>
    public static async Task RestoreRoleAsync(NpgsqlConnection conn, string id, RestRole role, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SET ROLE {SqlText.Ident(ActingRole(id, role))}", conn);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Drops the project's pools (project deleted).</summary>
    public void Forget(string id)
    {
        foreach (var role in Roles)
            if (_pools.TryRemove((id, role), out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
                _ = lazy.Value.Result.Source.DisposeAsync().AsTask();
    }

    /// <summary>Closes every idle connection (the server restarted: they are all broken).</summary>
    public void ClearAll()
    {
        foreach (var lazy in _pools.Values)
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully) lazy.Value.Result.Source.Clear();
    }

    private async Task<Pool> CreateAsync(string id, RestRole role)
    {
        var password = await EnsureLoginsAsync(id, renew: false, CancellationToken.None);
        var csb = new NpgsqlConnectionStringBuilder
        {
            Host = _platformCsb.Host, Port = _platformCsb.Port, Database = _platformCsb.Database,
            SslMode = _platformCsb.SslMode,
            Username = LoginRole(id, role), Password = password,
            ApplicationName = "dbstudio-rest",
            // The project's concurrency cap bounds what one pool can use at once.
            MinPoolSize = 0, MaxPoolSize = Math.Max(1, _options.MaxConcurrentPerProject),
            ConnectionIdleLifetime = Math.Max(1, (int)_options.PoolIdle.TotalSeconds),
            ConnectionPruningInterval = Math.Max(1, Math.Min(10, (int)_options.PoolIdle.TotalSeconds / 2)),
            // Session state (the role, the settings below) is the pool's own and stays; auto-prepared statements
            // survive across requests.
            NoResetOnClose = true,
            MaxAutoPrepare = 256,
            AutoPrepareMinUsages = 2,
            Options = $"-c statement_timeout={(int)_options.StatementTimeout.TotalMilliseconds}",
            Timezone = "UTC",
        };
        var acting = SqlText.Ident(ActingRole(id, role));
        var builder = new NpgsqlDataSourceBuilder(csb.ConnectionString) { Name = $"rest-{id}-{role}" };
        builder.UsePhysicalConnectionInitializer(
            conn => { using var cmd = new NpgsqlCommand($"SET ROLE {acting}", conn); cmd.ExecuteNonQuery(); },
            async conn => { await using var cmd = new NpgsqlCommand($"SET ROLE {acting}", conn); await cmd.ExecuteNonQueryAsync(); });
        return new Pool(builder.Build());
    }

    /// <summary>
    /// Makes sure the project's four REST logins exist with the password kept in platform metadata, creating them (and
    /// the password) when missing; <paramref name="renew"/> sets a new password on all four. Returns the password.
    /// </summary>
    public async Task<string> EnsureLoginsAsync(string id, bool renew, CancellationToken ct)
    {
        if (!ProjectNaming.IsValidId(id)) throw new ArgumentException("invalid project id", nameof(id));
        await using var conn = await _platform.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // One lock for all projects: GRANT CONNECT of two projects at once would update the same pg_database row
        // ("tuple concurrently updated"). Logins are made once per project, so this is not a queue in practice.
        await using (var lockCmd = new NpgsqlCommand(LoginsLockSql, conn, tx))
            await lockCmd.ExecuteNonQueryAsync(ct);
        string? stored;
        await using (var read = new NpgsqlCommand(
            """SELECT "Protected" FROM platform.project_secrets WHERE "ProjectId" = $1 AND "Kind" = $2""", conn, tx))
        {
            read.Parameters.Add(new() { Value = id });
            read.Parameters.Add(new() { Value = (int)ProjectSecretKind.RestPassword });
            stored = await read.ExecuteScalarAsync(ct) as string;
        }
        var loginsExist = await CountLoginsAsync(conn, tx, id, ct) == Roles.Length;
        if (stored is not null && loginsExist && !renew) return _protector.Unprotect(stored);

        await using (var exists = new NpgsqlCommand("SELECT 1 FROM platform.projects WHERE \"Id\" = $1", conn, tx))
        {
            exists.Parameters.Add(new() { Value = id });
            if (await exists.ExecuteScalarAsync(ct) is null) throw new KeyNotFoundException($"project {id} does not exist");
        }
        var password = ProjectNaming.NewPassword();
        // PASSWORD takes no parameter: a SCRAM verifier is the literal, so neither the server nor its log sees the password.
        var verifier = SqlText.Literal(Scram.Verifier(password));
        var sql = new System.Text.StringBuilder();
        foreach (var role in Roles)
        {
            var login = LoginRole(id, role);
            sql.Append($"""
                DO $do$ BEGIN
                  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {SqlText.Literal(login)}) THEN
                    CREATE ROLE {SqlText.Ident(login)} LOGIN NOINHERIT;
                  END IF;
                END $do$;
                ALTER ROLE {SqlText.Ident(login)} LOGIN NOINHERIT PASSWORD {verifier};
                GRANT {SqlText.Ident(ActingRole(id, role))} TO {SqlText.Ident(login)};
                GRANT CONNECT ON DATABASE {SqlText.Ident(conn.Database)} TO {SqlText.Ident(login)};

                """);
        }
        await using (var create = new NpgsqlCommand(sql.ToString(), conn, tx)) await create.ExecuteNonQueryAsync(ct);
        await using (var upsert = new NpgsqlCommand("""
            INSERT INTO platform.project_secrets ("ProjectId", "Kind", "Protected", "Hash", "CreatedAt") VALUES ($1, $2, $3, NULL, now())
            ON CONFLICT ("ProjectId", "Kind") DO UPDATE SET "Protected" = EXCLUDED."Protected", "CreatedAt" = now()
            """, conn, tx))
        {
            upsert.Parameters.Add(new() { Value = id });
            upsert.Parameters.Add(new() { Value = (int)ProjectSecretKind.RestPassword });
            upsert.Parameters.Add(new() { Value = _protector.Protect(password) });
            await upsert.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return password;
    }

    private static async Task<long> CountLoginsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string id, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin", conn, tx);
        cmd.Parameters.Add(new() { Value = LoginRoles(id).ToArray() });
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private void TrimIdle()
    {
        var cutoff = Environment.TickCount64 - (long)(_options.PoolIdle.TotalMilliseconds * 4);
        foreach (var (key, lazy) in _pools)
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully && Interlocked.Read(ref lazy.Value.Result.LastUsedTicks) < cutoff
                && _pools.TryRemove(new KeyValuePair<(string, RestRole), Lazy<Task<Pool>>>(key, lazy)))
                _ = lazy.Value.Result.Source.DisposeAsync().AsTask();
    }

    public async ValueTask DisposeAsync()
    {
        await _trim.DisposeAsync();
        foreach (var lazy in _pools.Values)
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully) await lazy.Value.Result.Source.DisposeAsync();
        _pools.Clear();
    }
}
