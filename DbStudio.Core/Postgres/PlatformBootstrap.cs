// Creates the platform's own role (LOGIN CREATEROLE, never superuser) and database on a server where we
// hold a superuser: the embedded cluster and the test cluster. Idempotent.
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Postgres;

public static class PlatformBootstrap
{
    /// <returns>A connection string for <paramref name="role"/> to <paramref name="database"/>.</returns>
    public static async Task<string> EnsureRoleAndDatabaseAsync(string superuserConnectionString, string role, string password,
        string database, CancellationToken ct = default)
    {
        if (!SqlText.SafeName().IsMatch(role) || !SqlText.SafeName().IsMatch(database))
            throw new ArgumentException("platform role and database names must be lowercase identifiers");
        await using (var conn = new NpgsqlConnection(superuserConnectionString))
        {
            await conn.OpenAsync(ct);
            await using var check = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = $1", conn);
            check.Parameters.Add(new() { Value = role });
            var exists = await check.ExecuteScalarAsync(ct) is not null;
            var verifier = SqlText.Literal(Scram.Verifier(password));
            var sql = exists
                ? $"ALTER ROLE {SqlText.Ident(role)} LOGIN CREATEROLE NOSUPERUSER PASSWORD {verifier}"
                : $"CREATE ROLE {SqlText.Ident(role)} LOGIN CREATEROLE NOSUPERUSER PASSWORD {verifier}";
            await using (var cmd = new NpgsqlCommand(sql, conn)) await cmd.ExecuteNonQueryAsync(ct);
            // The connection guard (Limits/ConnectionGuard) ends project owner sessions when the server runs short of
            // free slots, and sessions that hold PostgreSQL's NOTIFY queue; pg_signal_backend lets it do that without being
            // a member of the projects' roles, pg_read_all_stats lets it see how old their transactions are.
            await using (var grant = new NpgsqlCommand($"GRANT pg_signal_backend, pg_read_all_stats TO {SqlText.Ident(role)}", conn)) await grant.ExecuteNonQueryAsync(ct);
            await using var dbCheck = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", conn);
            dbCheck.Parameters.Add(new() { Value = database });
            if (await dbCheck.ExecuteScalarAsync(ct) is null)
            {
                await using var create = new NpgsqlCommand(
                    $"CREATE DATABASE {SqlText.Ident(database)} OWNER {SqlText.Ident(role)} TEMPLATE template0 ENCODING 'UTF8'", conn);
                await create.ExecuteNonQueryAsync(ct);
            }
        }
        var csb = new NpgsqlConnectionStringBuilder(superuserConnectionString)
        {
            Username = role, Password = password, Database = database, Pooling = true,
        };
        return csb.ConnectionString;
    }
}
