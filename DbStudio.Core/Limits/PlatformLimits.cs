// Per-account and per-address limits of the platform itself (issue 12): how many projects an account may own, how
// fast it may create them, how fast one client address may register accounts. Checked by the API and the UI alike.
using DbStudio.Core.Platform;
using DbStudio.Core.RateLimiting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace DbStudio.Core.Limits;

public sealed class LimitsOptions
{
    /// <summary>Projects one account may own (0 = no limit).</summary>
    public int ProjectsPerAccount { get; set; } = 20;
    /// <summary>Projects one account may create per hour, as a burst or one every hour / n (0 = no limit).</summary>
    public int ProjectsCreatedPerHour { get; set; } = 30;
    /// <summary>Accounts one client address may register per hour (API and form together; 0 = no limit).</summary>
    public int RegistrationsPerHour { get; set; } = 20;
    /// <summary>
    /// Connection slots kept free for the platform (PostgreSQL 15 has no reserved_connections): when fewer are free,
    /// the newest sessions of the projects' owner logins (Connection URL clients) are ended (0 = off).
    /// </summary>
    public int ReservedConnections { get; set; } = 20;
    /// <summary>How often the connection guard looks (and re-applies the projects' CONNECTION LIMITs).</summary>
    public TimeSpan ConnectionCheckPeriod { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>How full PostgreSQL's NOTIFY queue may get (0..1) before project sessions that hold it are ended (0 = off).</summary>
    public double NotifyQueueUsage { get; set; } = 0.05;
    /// <summary>How long a project session's transaction may have been open before it counts as holding the queue.</summary>
    public TimeSpan NotifyHolderAge { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>A limit refused the request: the status (403 quota, 429 rate), a code, a message naming the limit.</summary>
public sealed class PlatformLimitException(int status, string code, string message, int limit, TimeSpan? retryAfter = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public int Limit { get; } = limit;
    public TimeSpan? RetryAfter { get; } = retryAfter;
    public int? RetryAfterSeconds => RetryAfter is { } r ? KeyedRateLimiter.Seconds(r) : null;
}

public sealed class PlatformLimits : IDisposable
{
    private readonly IDbContextFactory<PlatformDbContext> _contexts;
    private readonly LimitsOptions _options;
    private readonly KeyedRateLimiter _registrations;
    private readonly KeyedRateLimiter _creations;

    public PlatformLimits(IDbContextFactory<PlatformDbContext> contexts, IOptions<DbStudioOptions> options, TimeProvider clock)
    {
        _contexts = contexts;
        _options = options.Value.Limits;
        _registrations = new KeyedRateLimiter(clock, _options.RegistrationsPerHour, TimeSpan.FromHours(1));
        _creations = new KeyedRateLimiter(clock, _options.ProjectsCreatedPerHour, TimeSpan.FromHours(1));
    }

    /// <summary>Spends a registration permit of the client address, or throws (429) with the time of the next one.</summary>
    public void CheckRegistration(string clientAddress)
    {
        if (!_registrations.TryAcquire(clientAddress, out var retry))
            throw new PlatformLimitException(429, "registration_rate",
                $"Too many accounts were registered from this address: at most {_options.RegistrationsPerHour} an hour " +
                $"(DbStudio:Limits:RegistrationsPerHour). Try again in {Describe(retry)}.", _options.RegistrationsPerHour, retry);
    }

    /// <summary>
    /// Before a project is created: the account's quota (403), then its creation rate (429). Throws when refused.
    /// </summary>
    public async Task CheckProjectCreationAsync(string ownerUserId, CancellationToken ct)
    {
        if (_options.ProjectsPerAccount > 0)
        {
            await using var db = await _contexts.CreateDbContextAsync(ct);
            var owned = await db.Projects.CountAsync(p => p.OwnerUserId == ownerUserId, ct);
            if (owned >= _options.ProjectsPerAccount)
                throw new PlatformLimitException(403, "project_quota",
                    $"This account owns {owned} projects, the most one account may own ({_options.ProjectsPerAccount}, " +
                    "DbStudio:Limits:ProjectsPerAccount). Delete a project to create another.", _options.ProjectsPerAccount);
        }
        if (!_creations.TryAcquire(ownerUserId, out var retry))
            throw new PlatformLimitException(429, "project_creation_rate",
                $"Too many projects were created by this account: at most {_options.ProjectsCreatedPerHour} an hour " +
                $"(DbStudio:Limits:ProjectsCreatedPerHour). Try again in {Describe(retry)}.", _options.ProjectsCreatedPerHour, retry);
    }

    public void Dispose()
    {
        _registrations.Dispose();
        _creations.Dispose();
    }

    private static string Describe(TimeSpan retry)
    {
        var s = KeyedRateLimiter.Seconds(retry);
        return s < 120 ? $"{s} s" : $"{(s + 59) / 60} min";
    }
}
