// Errors of the REST API in PostgREST's shape {code, message, details, hint}, and the one place where
// PostgreSQL's SQLSTATE becomes an HTTP status (PostgREST's mapSQLtoHTTP).
using System.Text.Json.Serialization;
using Npgsql;

namespace DbStudio.Core.Rest;

public sealed class RestException(int status, string code, string message, string? details = null, string? hint = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public RestError Error { get; private set; } = new(code, message, details, hint);
    /// <summary>Details as JSON rather than text (PGRST201's list of relationships).</summary>
    public object? JsonDetails { get => Error.Details; init => Error = Error with { Details = value }; }

    public static RestException BadRequest(string message, string? details = null, string? hint = null) =>
        new(400, "PGRST100", message, details, hint);
}

public sealed record RestError(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message,
    /// <summary>Text, or JSON (PGRST201 lists the candidate relationships).</summary>
    [property: JsonPropertyName("details")] object? Details,
    [property: JsonPropertyName("hint")] string? Hint);

public static class SqlStateHttp
{
    /// <param name="anonymous">permission errors are 401 for anon callers and 403 for signed-in users</param>
    public static int Status(string sqlState, bool anonymous)
    {
        switch (sqlState)
        {
            case PostgresErrorCodes.InsufficientPrivilege: return anonymous ? 401 : 403;
            case PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedFunction: return 404;
            case PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.ForeignKeyViolation
                or PostgresErrorCodes.ExclusionViolation: return 409;
            case PostgresErrorCodes.ReadOnlySqlTransaction: return 405;
            case PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected: return 409;
            case PostgresErrorCodes.QueryCanceled: return 504;
            case PostgresErrorCodes.TooManyConnections: return 503;
            case PostgresErrorCodes.ProgramLimitExceeded: return 413;
            case "P0001": return 400; // raise_exception
        }
        return sqlState[..2] switch
        {
            "08" => 503,                              // connection exception
            "0L" or "0P" or "28" => 403,              // invalid grantor / role / authorization
            "22" or "23" or "42" or "2F" => 400,      // data exception, integrity, syntax or access rule
            "53" => 503,                              // insufficient resources
            "54" => 413,
            "57" => 503,                              // operator intervention (shutdown, …)
            _ => 500,
        };
    }

    public static (int Status, RestError Error) From(PostgresException e, bool anonymous) =>
        (Status(e.SqlState, anonymous), new RestError(e.SqlState, e.MessageText, e.Detail, e.Hint));
}
