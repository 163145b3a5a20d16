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
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(7220411); " + Rest.RestConnections.LoginsLockSql, conn, tx))
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
            GRANT {owner}, {anon}, {user}, {userAdmin} TO CURRENT_USER;
            GRANT {group} TO {owner};
            CREATE SCHEMA {schema} AUTHORIZATION {owner};
            GRANT USAGE ON SCHEMA {schema} TO {anon}, {user}, {userAdmin};
            ALTER ROLE {owner} SET search_path = {schema};
            {Streams.ChangeCapture.CreateStreamSql(id)}
            """, ct);
    }

    /// <summary>Drops schema proj_{id} and whichever of its roles exist, inside <paramref name="tx"/>.</summary>
    public static async Task DropAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string id, CancellationToken ct)
    {
        if (!ProjectNaming.IsValidId(id)) throw new ArgumentException("invalid project id", nameof(id));
        string[] roles = [ProjectNaming.OwnerRole(id), ProjectNaming.AnonRole(id), ProjectNaming.UserRole(id), ProjectNaming.UserAdminRole(id),
            .. Rest.RestConnections.LoginRoles(id)];
        var existing = new List<string>();
        await using (var cmd = new NpgsqlCommand("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", conn, tx))
        {
            cmd.Parameters.Add(new() { Value = roles });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) existing.Add(r.GetString(0));
        }
        var sql = $"DROP SCHEMA IF EXISTS {SqlText.Ident(ProjectNaming.Schema(id))} CASCADE;" + Streams.ChangeCapture.DropStreamSql(id);
        // The REST logins own nothing and hold only CONNECT (the platform is not a member of them, so DROP OWNED BY
        // is not theirs to take): revoke it, then drop them with the rest.
        var logins = existing.Intersect(Rest.RestConnections.LoginRoles(id)).ToList();
        var owned = existing.Except(logins).ToList();
        if (logins.Count > 0) sql += Rest.RestConnections.LoginsLockSql;
        foreach (var login in logins)
            sql += $"ALTER ROLE {SqlText.Ident(login)} NOLOGIN; REVOKE ALL ON DATABASE {SqlText.Ident(conn.Database)} FROM {SqlText.Ident(login)};";
        if (owned.Count > 0)
        {
            if (owned.Contains(roles[0])) sql += $"ALTER ROLE {SqlText.Ident(roles[0])} NOLOGIN;";
            sql += $"DROP OWNED BY {string.Join(", ", owned.Select(SqlText.Ident))} CASCADE;";
        }
        if (existing.Count > 0) sql += $"DROP ROLE {string.Join(", ", existing.Select(SqlText.Ident))};";
        await Exec(conn, tx, sql, ct);
    }

    /// <summary>Ends the project's open sessions (console and REST pools, Connection URL clients) before a drop.</summary>
    public static async Task TerminateOwnerSessionsAsync(NpgsqlDataSource platform, string id, CancellationToken ct)
    {
        await using var cmd = platform.CreateCommand(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ANY($1) AND pid <> pg_backend_pid()");
        cmd.Parameters.Add(new() { Value = (string[])[ProjectNaming.OwnerRole(id), .. Rest.RestConnections.LoginRoles(id)] });
        await cmd.ExecuteScalarAsync(ct);
    }

    private static async Task Exec(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
