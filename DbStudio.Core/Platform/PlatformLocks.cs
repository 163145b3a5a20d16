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

    // SHARE ROW EXCLUSIVE conflicts with itself: one holder at a time, and nobody else ever reads these tables.
    private static string Sql(string table) => $"LOCK TABLE {Schema}.{table} IN SHARE ROW EXCLUSIVE MODE;";

    /// <summary>Makes the lock tables on a server (idempotent; instances that start together may race, and retry).</summary>
    public static async Task EnsureAsync(NpgsqlDataSource server, CancellationToken ct = default)
    {
        var sql = $"CREATE SCHEMA IF NOT EXISTS {Schema}; REVOKE ALL ON SCHEMA {Schema} FROM PUBLIC;"
                  + string.Concat(Tables.Select(t => $"CREATE TABLE IF NOT EXISTS {Schema}.{t} (); REVOKE ALL ON {Schema}.{t} FROM PUBLIC;"));
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var cmd = server.CreateCommand(sql);
                await cmd.ExecuteNonQueryAsync(ct);
                return;
            }
            // Made at the same moment by another instance: IF NOT EXISTS does not cover the race.
            catch (PostgresException e) when (attempt < 5 && e.SqlState is PostgresErrorCodes.UniqueViolation
                                                  or PostgresErrorCodes.DuplicateTable or PostgresErrorCodes.DuplicateSchema)
            {
            }
        }
    }
}
