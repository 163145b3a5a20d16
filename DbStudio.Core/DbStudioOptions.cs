// Settings bound from configuration section "DbStudio".
namespace DbStudio.Core;

public sealed class DbStudioOptions
{
    public const string Section = "DbStudio";

    /// <summary>Public base URL of the app (for REST URLs); null = taken from the request.</summary>
    public string? PublicBaseUrl { get; set; }
    /// <summary>Host and port clients use for the Connection URL; null = those of the platform connection.</summary>
    public string? PublicDbHost { get; set; }
    public int? PublicDbPort { get; set; }

    /// <summary>
    /// Most connections one project's owner role may hold (console pool + Connection URL clients): its CONNECTION LIMIT,
    /// enforced by PostgreSQL, re-applied to existing projects when it changes (Limits.ConnectionGuard).
    /// </summary>
    public int OwnerConnectionLimit { get; set; } = 5;

    public ConsoleOptions Console { get; set; } = new();
    public Rest.RestOptions Rest { get; set; } = new();
    public Streams.StreamOptions Streams { get; set; } = new();
    public Limits.LimitsOptions Limits { get; set; } = new();
}

public sealed class ConsoleOptions
{
    /// <summary>Deadline per statement, enforced by the app (users can change statement_timeout).</summary>
    public TimeSpan StatementTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>Rows kept per result; the true count is still reported.</summary>
    public int MaxRows { get; set; } = 1000;
    /// <summary>
    /// Longest value kept, in bytes of its UTF-8 text: a longer one is cut there while it is read (its true length is
    /// reported and the value marked truncated), so a 200 MB value never sits in memory.
    /// </summary>
    public int MaxValueBytes { get; set; } = 1024 * 1024;
    /// <summary>
    /// Bytes of values one statement's result keeps (UTF-8 text). Past it, rows are counted but not kept, and a query
    /// (SELECT, VALUES, TABLE, SHOW, WITH … SELECT) outside an explicit transaction is stopped there.
    /// </summary>
    public long MaxResultBytes { get; set; } = 8 * 1024 * 1024;
    /// <summary>Bytes of values one run keeps, all statements of the script together (each within MaxResultBytes).</summary>
    public long MaxRunBytes { get; set; } = 32 * 1024 * 1024;
    /// <summary>Longest script accepted, in characters.</summary>
    public int MaxScriptLength { get; set; } = 1_000_000;
    /// <summary>Connections per project pool for console/assistant SQL (they count toward OwnerConnectionLimit).</summary>
    public int PoolSize { get; set; } = 2;
    /// <summary>Idle owner connections are closed after this long; idle pools are dropped after ten times it.</summary>
    public TimeSpan PoolIdle { get; set; } = TimeSpan.FromSeconds(30);
}
