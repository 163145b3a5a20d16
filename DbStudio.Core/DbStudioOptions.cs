// Settings bound from configuration section "DbStudio".
using DbStudio.Core.Projects;
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
    public RestOptions Rest { get; set; } = new();
    public StreamOptions Streams { get; set; } = new();
    public Limits.LimitsOptions Limits { get; set; } = new();
    public CsvOptions Csv { get; set; } = new();
    public AuthOptions Auth { get; set; } = new();
}

/// <summary>CSV import and export (Core/Csv).</summary>
public sealed class CsvOptions
{
    /// <summary>Largest CSV file an import takes, in bytes (it is buffered to a temporary file, not held in memory).</summary>
    public long MaxImportBytes { get; set; } = 1L << 30;
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
    /// <summary>Console/assistant connections one project keeps at most (they count toward OwnerConnectionLimit and the pool's budget).</summary>
    public int PoolSize { get; set; } = 2;
    /// <summary>Idle owner connections are closed after this long.</summary>
    public TimeSpan PoolIdle { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class RestOptions
{
    /// <summary>Most rows one response carries (PostgREST's db-max-rows).</summary>
    public long MaxRows { get; set; } = 1000;
    public TimeSpan StatementTimeout { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>How long an unused REST connection stays open.</summary>
    public TimeSpan PoolIdle { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// Project connections one instance holds at most, all projects together: REST logins and console connections
    /// (ProjectConnectionPool). 0: sized from the server's max_connections at start-up (ProjectConnectionPool.BudgetFor).
    /// </summary>
    public int MaxConnections { get; set; }
    /// <summary>The budget until the server was asked (and when it cannot be).</summary>
    public const int DefaultMaxConnections = 128;
    /// <summary>Largest request body accepted, in bytes.</summary>
    public long MaxBodyBytes { get; set; } = 10 * 1024 * 1024;
    /// <summary>
    /// Largest REST or RPC answer, in bytes: the answer is made in the app's memory before it is sent, and a short request
    /// can ask for a great deal (embeds multiply: each to-many level may bring MaxRows rows). A larger one is refused
    /// (400, DBS001) and nothing is written.
    /// </summary>
    public long MaxResponseBytes { get; set; } = 64 * 1024 * 1024;
    /// <summary>
    /// REST statements one project may run at once (and the most connections one of its pools holds): one busy project
    /// cannot take the server, and the rest wait their turn in order instead of all competing for the CPU — about
    /// two per core is where a machine's throughput peaks and its tail latency stays short.
    /// </summary>
    public int MaxConcurrentPerProject { get; set; } = Math.Max(4, 2 * Environment.ProcessorCount);
    /// <summary>
    /// CONNECTION LIMIT of each of a project's four REST logins (0 = twice MaxConcurrentPerProject: one instance opens at
    /// most MaxConcurrentPerProject per login, so two instances fit; raise it when running more).
    /// </summary>
    public int LoginConnectionLimit { get; set; }
    public int EffectiveLoginConnectionLimit => LoginConnectionLimit > 0 ? LoginConnectionLimit : 2 * MaxConcurrentPerProject;
    /// <summary>How long a request waits for its project's turn before a 503.</summary>
    public TimeSpan ProjectQueueTimeout { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>Requests of one project that may wait for their turn at once; one more is answered 503 at once.</summary>
    public int ProjectQueueLimit { get; set; } = 1024;
    /// <summary>REST and stream requests per second per credential (429 with Retry-After beyond; 0 = off).</summary>
    public int RequestsPerSecondPerKey { get; set; } = 1000;
    /// <summary>REST and stream requests per second per client address (0 = off).</summary>
    public int RequestsPerSecondPerIp { get; set; } = 2000;
}

/// <summary>End-user auth of the projects (/db/{id}/auth, GoTrue's routes).</summary>
public sealed class AuthOptions
{
    /// <summary>Sign-up, login and refresh attempts per minute per client address and project.</summary>
    public int AttemptsPerMinute { get; set; } = 30;
}

public sealed class StreamOptions
{
    /// <summary>How long changes stay in the log for resuming (Last-Event-ID).</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromHours(24);
    /// <summary>Events one subscriber may have queued before it is dropped.</summary>
    public int QueueCapacity { get; set; } = 2048;
    /// <summary>Longest silence on a stream before a heartbeat comment.</summary>
    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(15);
    /// <summary>The reconnect delay advised to clients (SSE retry:).</summary>
    public TimeSpan Retry { get; set; } = TimeSpan.FromSeconds(2);
    public TimeSpan PruneInterval { get; set; } = TimeSpan.FromMinutes(1);
    /// <summary>How often open streams' credentials are looked at again (logout, expiry, rotation end them).</summary>
    public TimeSpan CredentialCheck { get; set; } = TimeSpan.FromMilliseconds(500);
}
