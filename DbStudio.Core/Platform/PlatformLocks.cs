// The locks the platform takes around its own changes to a server (the database's grants, REST logins, the change log's
// schema): locks on tables in a schema no project role may use, made at start-up on every server. Not advisory locks:
// those are one space every role of the database shares (pg_advisory_lock is PUBLIC's), so a project owner could take
// the platform's key over its Connection URL, keep it, and every other project would wait (HostileTenantReviewTests).
using Npgsql;

namespace DbStudio.Core.Platform;

public static class PlatformLocks
{
    public const string Schema = "dbstudio_locks";

    /// <summary>The database's grants (CONNECT and TEMPORARY: one pg_database row that every change rewrites).</summary>
    public static readonly string Database = Sql("database_grants");
    /// <summary>The projects' REST logins (made, renewed, dropped; each changes the database's grants too).</summary>
    public static readonly string RestLogins = Sql("rest_logins");
    /// <summary>The change log's schema on a server other than the platform's.</summary>
    public static readonly string ChangeLog = Sql("change_log");

    private static readonly string[] Tables = ["database_grants", "rest_logins", "change_log"];

    // SHARE ROW EXCLUSIVE conflicts with itself: one holder at a time, and nobody else ever reads these tables. The
    // transaction waits for no lock longer than a few seconds: what it does next (DROP ROLE, ALTER ROLE) can wait on a
    // lock a project holds — a GRANT to one of the roles, kept open — and every other project would wait behind it.
    private static string Sql(string table) => $"SET LOCAL lock_timeout = '5s'; LOCK TABLE {Schema}.{table} IN SHARE ROW EXCLUSIVE MODE;";

    /// <summary>
    /// Makes the lock tables on a server where they are missing (instances that start together may race: the one that
    /// loses retries). Only what is missing is made: rewriting the catalog rows of what exists (a REVOKE at every start)
    /// made two starting instances fail with "tuple concurrently updated".
    /// </summary>
    public static async Task EnsureAsync(NpgsqlDataSource server, CancellationToken ct = default)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var conn = await server.OpenConnectionAsync(ct);
                var missing = new List<string>();
                await using (var check = new NpgsqlCommand(
                    "SELECT t FROM unnest($1::text[]) t WHERE to_regclass($2 || '.' || t) IS NULL", conn))
                {
                    check.Parameters.Add(new() { Value = Tables });
                    check.Parameters.Add(new() { Value = Schema });
                    await using var r = await check.ExecuteReaderAsync(ct);
                    while (await r.ReadAsync(ct)) missing.Add(r.GetString(0));
                }
                if (missing.Count == 0) return;
                await using var tx = await conn.BeginTransactionAsync(ct);
                var sql = $"CREATE SCHEMA IF NOT EXISTS {Schema}; REVOKE ALL ON SCHEMA {Schema} FROM PUBLIC;"
                          + string.Concat(missing.Select(t => $"CREATE TABLE IF NOT EXISTS {Schema}.{t} (); REVOKE ALL ON {Schema}.{t} FROM PUBLIC;"));
                await using (var create = new NpgsqlCommand(sql, conn, tx)) await create.ExecuteNonQueryAsync(ct);
                await tx.CommitAsync(ct);
                return;
            }
            // Made at the same moment by another instance: IF NOT EXISTS does not cover the race.
            catch (PostgresException e) when (attempt < 10 && e.SqlState is PostgresErrorCodes.UniqueViolation
                                                  or PostgresErrorCodes.DuplicateTable or PostgresErrorCodes.DuplicateSchema
                                                  or PostgresErrorCodes.InternalError) // XX000: tuple concurrently updated
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20 * (attempt + 1)), ct);
            }
        }
    }
}
