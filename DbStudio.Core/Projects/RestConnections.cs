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
// kept encrypted with the project's other secrets and never shown.
// Connections: one budget for all projects (DbStudio:Rest:MaxConnections). A connection belongs to one project and
// kind, so Npgsql's pools (one per connection string, no shared limit) would hold idle connections for every project
// that was busy lately — 50 busy projects ran PostgreSQL out of connection slots. This small pool keeps idle
// connections per project and kind, and when the budget is spent it closes the least recently used idle one of any
// project to open the one needed; requests wait only when every connection is busy.
using System.Collections.Concurrent;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

/// <summary>Which of the project's roles a REST connection acts as.</summary>
public enum RestRole { Anon, User, UserAdmin, Owner }

public sealed class RestConnections : IAsyncDisposable
{
    private static readonly RestRole[] Roles = [RestRole.Anon, RestRole.User, RestRole.UserAdmin, RestRole.Owner];

    /// <summary>An idle connection, in its project and kind's stack and in the least-recently-used list.</summary>
    private sealed class Idle(NpgsqlConnection connection, (string, RestRole) key)
    {
        public NpgsqlConnection Connection { get; } = connection;
        public (string Project, RestRole Role) Key { get; } = key;
        public long Since = Environment.TickCount64;
        public LinkedListNode<Idle>? Node;
    }

    private readonly Lock _lock = new();
    private readonly Dictionary<(string, RestRole), Stack<Idle>> _idle = [];
    private readonly LinkedList<Idle> _lru = new();
    private readonly Dictionary<NpgsqlConnection, (string Project, RestRole Role, int Generation)> _busy = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, int> _generation = [];
    private readonly Dictionary<(string, RestRole), int> _busyCount = [];
    private readonly SemaphoreSlim _returned = new(0);
    private int _open;
    private int _waiting;

    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _connectionStrings = new();
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
        var period = TimeSpan.FromSeconds(Math.Clamp(_options.PoolIdle.TotalSeconds / 4, 1, 15));
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

    /// <summary>Every connection stayed busy for the whole queue timeout (nothing is broken: retry later).</summary>
    public sealed class BusyException(string message) : NpgsqlException(message);

    /// <summary>Open physical connections (idle and busy), for tests and metrics.</summary>
    public int OpenCount { get { lock (_lock) return _open; } }

    /// <summary>
    /// A connection of project <paramref name="id"/>, already acting as <paramref name="role"/>; give it back with
    /// <see cref="Return"/> (a broken one is closed there).
    /// </summary>
    public async Task<NpgsqlConnection> RentAsync(string id, RestRole role, CancellationToken ct)
    {
        var key = (id, role);
        var deadline = Environment.TickCount64 + (long)_options.ProjectQueueTimeout.TotalMilliseconds;
        while (true)
        {
            NpgsqlConnection? victim = null;
            var openNew = false;
            lock (_lock)
            {
                if (_idle.TryGetValue(key, out var stack) && stack.TryPop(out var idle))
                {
                    _lru.Remove(idle.Node!);
                    return MarkBusyLocked(idle.Connection, key);
                }
                // The login's CONNECTION LIMIT (PostgreSQL would refuse one more): wait for one of its own to come back.
                // (A connection being opened counts as busy from the moment it is decided on.)
                if (_busyCount.GetValueOrDefault(key) >= _options.EffectiveLoginConnectionLimit) _waiting++;
                else if (_open < _options.MaxConnections) { _open++; openNew = true; }
                else if (_busyCount.GetValueOrDefault(key) > 0) _waiting++; // one of its own comes back soon: no churn
                else if (_lru.First is { } oldest)
                {
                    // The budget is spent: the least recently used idle connection (of any project) makes room.
                    RemoveIdleLocked(oldest.Value);
                    victim = oldest.Value.Connection;
                    openNew = true;
                }
                else _waiting++;
                if (openNew) _busyCount[key] = _busyCount.GetValueOrDefault(key) + 1;
            }
            if (victim is not null) await victim.DisposeAsync();
            if (openNew)
            {
                try
                {
                    var conn = await OpenNewAsync(id, role, renewed: false, ct);
                    lock (_lock) return MarkBusyLocked(conn, key, counted: true);
                }
                catch
                {
                    lock (_lock)
                        if (_busyCount[key] == 1) _busyCount.Remove(key); else _busyCount[key]--;
                    Closed();
                    throw;
                }
            }
            try
            {
                var left = deadline - Environment.TickCount64;
                if (left <= 0 || !await _returned.WaitAsync(TimeSpan.FromMilliseconds(left), ct))
                    throw new BusyException($"All {_options.MaxConnections} REST connections are busy");
            }
            finally { lock (_lock) _waiting--; }
        }
    }

    private NpgsqlConnection MarkBusyLocked(NpgsqlConnection conn, (string Project, RestRole Role) key, bool counted = false)
    {
        _busy[conn] = (key.Project, key.Role, _generation.GetValueOrDefault(key.Project));
        if (!counted) _busyCount[key] = _busyCount.GetValueOrDefault(key) + 1;
        return conn;
    }

    /// <summary>Gives a rented connection back: kept for its project and kind when healthy, else closed.</summary>
    public void Return(NpgsqlConnection conn)
    {
        bool keep;
        lock (_lock)
        {
            if (!_busy.Remove(conn, out var owner)) return;
            var key = (owner.Project, owner.Role);
            if (_busyCount[key] == 1) _busyCount.Remove(key); else _busyCount[key]--;
            keep = conn.FullState == System.Data.ConnectionState.Open && owner.Generation == _generation.GetValueOrDefault(owner.Project);
            if (keep)
            {
                if (!_idle.TryGetValue(key, out var stack)) _idle[key] = stack = new Stack<Idle>();
                var idle = new Idle(conn, key);
                idle.Node = _lru.AddLast(idle);
                stack.Push(idle);
            }
            else _open--;
            if (_waiting > 0) _returned.Release(_waiting); // all of them look again: the one returned may not be theirs
        }
        if (!keep) conn.Dispose();
    }

    private void Closed()
    {
        lock (_lock)
        {
            _open--;
            if (_waiting > 0) _returned.Release(_waiting); // all of them look again: the one returned may not be theirs
        }
    }

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
            _connectionStrings.TryRemove(id, out _);
            await EnsureLoginsAsync(id, renew: true, ct);
            return await OpenNewAsync(id, role, renewed: true, ct);
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    private async Task<string> ConnectionStringAsync(string id, RestRole role, CancellationToken ct)
    {
        var lazy = _connectionStrings.GetOrAdd(id, key => new Lazy<Task<string>>(() => BaseConnectionStringAsync(key)));
        string baseCs;
        try { baseCs = await lazy.Value.WaitAsync(ct); }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            _connectionStrings.TryRemove(new KeyValuePair<string, Lazy<Task<string>>>(id, lazy));
            throw;
        }
        return new NpgsqlConnectionStringBuilder(baseCs) { Username = LoginRole(id, role) }.ConnectionString;
    }

    private async Task<string> BaseConnectionStringAsync(string id)
    {
        var password = await EnsureLoginsAsync(id, renew: false, CancellationToken.None);
        return new NpgsqlConnectionStringBuilder
        {
            Host = _platformCsb.Host, Port = _platformCsb.Port, Database = _platformCsb.Database, SslMode = _platformCsb.SslMode,
            Password = password,
            ApplicationName = "dbstudio-rest",
            // This class pools (see above); a connection keeps its session — the role, the settings below and its
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

    /// <summary>Closes the project's idle connections and retires its busy ones (project deleted).</summary>
    public void Forget(string id)
    {
        _connectionStrings.TryRemove(id, out _);
        List<NpgsqlConnection> close = [];
        lock (_lock)
        {
            _generation[id] = _generation.GetValueOrDefault(id) + 1;
            foreach (var role in Roles)
                if (_idle.Remove((id, role), out var stack))
                    foreach (var idle in stack)
                    {
                        _lru.Remove(idle.Node!);
                        close.Add(idle.Connection);
                        _open--;
                    }
            if (_waiting > 0 && close.Count > 0) _returned.Release(_waiting);
        }
        foreach (var c in close) c.Dispose();
    }

    /// <summary>Closes every idle connection (the server restarted: they are all broken).</summary>
    public void ClearAll() => CloseIdle(olderThan: null);

    /// <summary>Takes one idle connection out of the list and out of its stack (where it is the oldest: the bottom).</summary>
    private void RemoveIdleLocked(Idle idle)
    {
        _lru.Remove(idle.Node!);
        var stack = _idle[idle.Key];
        if (stack.Count == 1) { _idle.Remove(idle.Key); return; }
        var newer = stack.Where(i => !ReferenceEquals(i, idle)).Reverse().ToArray(); // top-first → bottom-first
        stack.Clear();
        foreach (var i in newer) stack.Push(i);
    }

    private void TrimIdle() => CloseIdle(Environment.TickCount64 - (long)_options.PoolIdle.TotalMilliseconds);

    private void CloseIdle(long? olderThan)
    {
        List<NpgsqlConnection> close = [];
        lock (_lock)
        {
            while (_lru.First is { } oldest && (olderThan is null || oldest.Value.Since < olderThan))
            {
                RemoveIdleLocked(oldest.Value);
                close.Add(oldest.Value.Connection);
                _open--;
            }
            if (_waiting > 0 && close.Count > 0) _returned.Release(_waiting);
        }
        foreach (var c in close) c.Dispose();
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
        // The password is 32 random letters and digits (~190 bits): key stretching adds nothing to it, and cheap
        // verification keeps opening a connection (when the budget makes room for another project) cheap.
        var verifier = SqlText.Literal(Scram.Verifier(password, iterations: 16));
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
                ALTER ROLE {SqlText.Ident(login)} LOGIN NOINHERIT CONNECTION LIMIT {_options.EffectiveLoginConnectionLimit} PASSWORD {verifier};
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

    public async ValueTask DisposeAsync()
    {
        await _trim.DisposeAsync();
        ClearAll();
    }
}
