// Creates and drops a project's schema and roles (DESIGN §2). Every statement runs in the caller's
// transaction, so provisioning and deletion are all-or-nothing: a crash half-way leaves nothing behind.
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Projects;

public sealed class ProjectProvisioner
{
    /// <summary>Group role holding CONNECT and TEMPORARY on the platform database; every project owner is a member.
    /// Granting on the database once (not per project) avoids "tuple concurrently updated" under parallel creates.</summary>
    public static string OwnersGroup(string database) => $"{database}_project_owners";

    /// <summary>
    /// Locks the platform database down (idempotent, run at start-up by the platform role): nobody but the
    /// platform role and project owners may connect, nobody may create schemas or objects in `public`.
    /// </summary>
    public static async Task HardenDatabaseAsync(NpgsqlDataSource platform, CancellationToken ct = default)
    {
        await using var conn = await platform.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // The second lock: REST logins' CONNECT grants change the same pg_database row (RestConnections).
        await using (var lockCmd = new NpgsqlCommand(Platform.PlatformLocks.Database + Projects.RestConnections.LoginsLockSql, conn, tx))
            await lockCmd.ExecuteNonQueryAsync(ct);
        var db = conn.Database;
        var group = OwnersGroup(db);
        await using (var exists = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = $1", conn, tx))
        {
            exists.Parameters.Add(new() { Value = group });
            if (await exists.ExecuteScalarAsync(ct) is null)
                await Exec(conn, tx, $"CREATE ROLE {SqlText.Ident(group)} NOLOGIN", ct);
        }
        await Exec(conn, tx, $"""
            REVOKE ALL ON DATABASE {SqlText.Ident(db)} FROM PUBLIC;
            GRANT CONNECT, TEMPORARY ON DATABASE {SqlText.Ident(db)} TO {SqlText.Ident(group)};
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
            """, ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Creates schema proj_{id} and its three roles inside <paramref name="tx"/>.</summary>
    public static async Task CreateAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string id, string ownerPassword,
        int ownerConnectionLimit, CancellationToken ct)
    {
        if (!ProjectNaming.IsValidId(id)) throw new ArgumentException("invalid project id", nameof(id));
        var schema = SqlText.Ident(ProjectNaming.Schema(id));
        var owner = SqlText.Ident(ProjectNaming.OwnerRole(id));
        var anon = SqlText.Ident(ProjectNaming.AnonRole(id));
        var user = SqlText.Ident(ProjectNaming.UserRole(id));
        var userAdmin = SqlText.Ident(ProjectNaming.UserAdminRole(id));
        var group = SqlText.Ident(OwnersGroup(conn.Database));
        // PASSWORD takes no parameter: a SCRAM verifier built here is the literal, so the server and its
        // logs never see the password itself.
        var verifier = SqlText.Literal(Scram.Verifier(ownerPassword));
        await Exec(conn, tx, $"""
            CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
                CONNECTION LIMIT {ownerConnectionLimit} PASSWORD {verifier};
            CREATE ROLE {anon} NOLOGIN NOINHERIT;
            CREATE ROLE {user} NOLOGIN NOINHERIT;
            CREATE ROLE {userAdmin} NOLOGIN NOINHERIT;
            GRANT {group} TO {owner};
            -- The one statement that needs the platform to be a member of the owner: held for this transaction only.
            GRANT {owner} TO CURRENT_USER;
            CREATE SCHEMA {schema} AUTHORIZATION {owner};
            GRANT USAGE ON SCHEMA {schema} TO {anon}, {user}, {userAdmin};
            -- Functions the owner makes are not executable by PUBLIC (PostgreSQL's default): the owner allows each one.
            ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
            REVOKE {owner} FROM CURRENT_USER;
            ALTER ROLE {owner} SET search_path = {schema};
            """, ct);
    }

    /// <summary>
    /// Drops whichever of the project's roles exist, inside <paramref name="tx"/> on the platform connection — after the
    /// project's own login dropped everything the owner owns (<see cref="DropOwnedSql"/>), so no project object is left
    /// for the platform to touch. The roles it cannot drop while they hold grants (another project granted them
    /// something) lose those grants first: the platform is a member of them for this transaction only (DROP OWNED runs
    /// no project code), and the membership goes with the role.
    /// </summary>
    public static async Task DropAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string id, CancellationToken ct)
    {
        if (!ProjectNaming.IsValidId(id)) throw new ArgumentException("invalid project id", nameof(id));
        string[] roles = [ProjectNaming.OwnerRole(id), ProjectNaming.AnonRole(id), ProjectNaming.UserRole(id), ProjectNaming.UserAdminRole(id),
            .. ProjectLogins.LoginRoles(id), .. ProjectLogins.LegacyLoginRoles(id)];
        var existing = new List<string>();
        await using (var cmd = new NpgsqlCommand("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", conn, tx))
        {
            cmd.Parameters.Add(new() { Value = roles });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) existing.Add(r.GetString(0));
        }
        var sql = "";
        var logins = existing.Intersect(ProjectLogins.LoginRoles(id).Concat(ProjectLogins.LegacyLoginRoles(id))).ToList();
        var grouped = existing.Except(logins).ToList();
        if (logins.Count > 0) sql += Projects.RestConnections.LoginsLockSql;
        foreach (var login in logins)
            sql += $"ALTER ROLE {SqlText.Ident(login)} NOLOGIN; REVOKE ALL ON DATABASE {SqlText.Ident(conn.Database)} FROM {SqlText.Ident(login)};";
        if (existing.Count == 0) return;
        if (grouped.Contains(roles[0])) sql += $"ALTER ROLE {SqlText.Ident(roles[0])} NOLOGIN;";
        // What other projects granted to any of them (any owner may GRANT on its objects to any role, the REST logins
        // included) goes first, else DROP ROLE fails and the project cannot be deleted. A grant is revoked only by a role
        // with the rights of its grantor: for this transaction the platform is a member of the owners of those objects
        // too (DROP OWNED runs no project code), and gives that membership up before it commits.
        var grantors = new List<string>();
        await using (var cmd = new NpgsqlCommand("""
            SELECT DISTINCT r.rolname FROM pg_shdepend a
            JOIN pg_shdepend o ON o.dbid = a.dbid AND o.classid = a.classid AND o.objid = a.objid AND o.deptype = 'o'
            JOIN pg_roles r ON r.oid = o.refobjid
            WHERE a.deptype = 'a' AND a.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
              AND a.refobjid IN (SELECT g.oid FROM pg_roles g WHERE g.rolname = ANY($1))
              AND r.rolname <> ALL($1) AND r.rolname LIKE 'proj\_%\_owner'
            """, conn, tx))
        {
            cmd.Parameters.Add(new() { Value = existing.ToArray() });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) grantors.Add(r.GetString(0));
        }
        var list = string.Join(", ", existing.Select(SqlText.Ident));
        var owners = string.Join(", ", grantors.Select(SqlText.Ident));
        sql += $"GRANT {list} TO CURRENT_USER;" + (grantors.Count > 0 ? $"GRANT {owners} TO CURRENT_USER;" : "")
               + $"DROP OWNED BY {list} CASCADE;" + (grantors.Count > 0 ? $"REVOKE {owners} FROM CURRENT_USER;" : "");
        sql += $"DROP ROLE {string.Join(", ", existing.Select(SqlText.Ident))};";
        await Exec(conn, tx, sql, ct);
    }

    /// <summary>
    /// Run by the project's owner (on its own login, never the platform's): drops the schema and everything the owner
    /// owns, and what was granted to it.
    /// </summary>
    public static string DropOwnedSql(string id) => $"DROP OWNED BY {SqlText.Ident(ProjectNaming.OwnerRole(id))} CASCADE";

    /// <summary>
    /// Run by the platform at start-up: the platform role keeps no standing membership in any project's roles (older
    /// versions granted it all four at creation). Returns how many memberships were given up.
    /// </summary>
    public static async Task<int> DropStandingMembershipsAsync(NpgsqlDataSource platform, CancellationToken ct = default)
    {
        var held = new List<string>();
        await using (var cmd = platform.CreateCommand("""
            SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
            WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND r.rolname LIKE 'proj\_%'
            """))
        {
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) held.Add(r.GetString(0));
        }
        foreach (var chunk in held.Chunk(500))
        {
            await using var revoke = platform.CreateCommand($"REVOKE {string.Join(", ", chunk.Select(SqlText.Ident))} FROM CURRENT_USER");
            await revoke.ExecuteNonQueryAsync(ct);
        }
        return held.Count;
    }

    /// <summary>
    /// Run by the project's owner on its own login before <see cref="DropOwnedSql"/>: ends the owner's other sessions
    /// (console pool, Connection URL clients). Signalling a backend needs the rights of its role, which the platform
    /// does not hold; the REST logins' sessions need no ending (their pools are closed, and a role can be dropped under
    /// an open session, which can then do nothing).
    /// </summary>
    public static string TerminateOwnerSessionsSql =>
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid()";

    private static async Task Exec(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
