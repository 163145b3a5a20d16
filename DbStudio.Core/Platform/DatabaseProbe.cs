// Is PostgreSQL reachable? Used by the panel to tell "the database is away, reconnecting" from other errors, and to
// know when to try again.
using Npgsql;

namespace DbStudio.Core.Platform;

/// <summary>Raised where a component learns of an outage from an error answer (REST's PGRST001) rather than an exception.</summary>
public sealed class DatabaseUnavailableException(string message) : Exception(message);

public sealed class DatabaseProbe(NpgsqlDataSource platform)
{
    /// <summary>Error codes of answers that mean the same: PGRST001 (no connection), SQLSTATE 57P* (shutdown, restart), 08* (connection).</summary>
    public static bool IsOutageCode(string code) =>
        code == "PGRST001" || code.StartsWith("57P", StringComparison.Ordinal) || code.StartsWith("08", StringComparison.Ordinal);

    /// <summary>Errors that mean the database is unreachable or restarting (not that the request was wrong).</summary>
    public static bool IsOutage(Exception e) => e switch
    {
        DatabaseUnavailableException => true,
        PostgresException p => IsOutageCode(p.SqlState),
        NpgsqlException => true,
        AggregateException a => a.InnerExceptions.Any(IsOutage),
        _ => e.InnerException is { } inner && IsOutage(inner),
    };

    public async Task<bool> IsUpAsync(CancellationToken ct = default)
    {
        try
        {
            await using var cmd = platform.CreateCommand("SELECT 1");
            await cmd.ExecuteScalarAsync(ct);
            return true;
        }
        catch (Exception e) when (IsOutage(e)) { return false; }
    }
}
