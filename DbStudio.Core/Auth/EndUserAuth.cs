// End users of a project (DESIGN §3): signup, login, rotating single-use refresh tokens, logout that
// revokes at once, roles. Tokens are random and stored only as SHA-256 hashes; validation is cached in memory.
using System.Net.Mail;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace DbStudio.Core.Auth;

public sealed record EndUserInfo(Guid id, string email, string role, DateTimeOffset created_at);

public sealed record Session(string access_token, string token_type, int expires_in, string refresh_token, EndUserInfo user);

public sealed class AuthException(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
}

/// <summary>What a valid access token stands for.</summary>
public sealed record SessionPrincipal(string ProjectId, Guid UserId, string Role, DateTimeOffset ExpiresAt);

public sealed class EndUserAuth(IDbContextFactory<PlatformDbContext> contexts, TimeProvider clock, PlatformSignals signals) : IDisposable
{
    public static readonly TimeSpan AccessLifetime = TimeSpan.FromHours(1);
    public static readonly TimeSpan RefreshLifetime = TimeSpan.FromDays(30);
    /// <summary>How long a validated token is trusted without asking the database (bounds revocation delay across instances).</summary>
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(30);
    public const int MinPasswordLength = 8;
    public const int MaxPasswordLength = 1024;

    private readonly PasswordHasher<EndUser> _hasher = new();
    /// <summary>Access token hash → what it stands for, trusted for CacheFor; least recently used dropped past the limit.</summary>
    private readonly BoundedCache<string, SessionPrincipal> _cache = new(clock, sizeLimit: 100_000);

    public async Task<Session> SignupAsync(string projectId, string? email, string? password, CancellationToken ct = default)
    {
        var normalized = ValidateEmail(email);
        ValidatePassword(password);
        await using var db = await contexts.CreateDbContextAsync(ct);
        if (await db.EndUsers.AnyAsync(u => u.ProjectId == projectId && u.NormalizedEmail == normalized, ct))
            throw new AuthException(422, "user_already_exists", "A user with this email address has already been registered");
        var user = new EndUser
        {
            Id = Guid.CreateVersion7(), ProjectId = projectId, Email = email!.Trim(), NormalizedEmail = normalized,
            PasswordHash = "", CreatedAt = clock.GetUtcNow(),
        };
        user.PasswordHash = _hasher.HashPassword(user, password!);
        db.EndUsers.Add(user);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException) // a concurrent signup with the same email won the race
        {
            throw new AuthException(422, "user_already_exists", "A user with this email address has already been registered");
        }
        return await NewSessionAsync(db, user, Guid.NewGuid(), ct);
    }

    public async Task<Session> LoginAsync(string projectId, string? email, string? password, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(email) || string.IsNullOrEmpty(password) || password.Length > MaxPasswordLength)
            throw InvalidCredentials();
        var normalized = email.Trim().ToLowerInvariant();
        await using var db = await contexts.CreateDbContextAsync(ct);
        var user = await db.EndUsers.FirstOrDefaultAsync(u => u.ProjectId == projectId && u.NormalizedEmail == normalized, ct);
        if (user is null)
        {
            _hasher.VerifyHashedPassword(new EndUser { ProjectId = "", Email = "", NormalizedEmail = "", PasswordHash = "" },
                DummyHash.Value, password); // same work whether or not the email exists
            throw InvalidCredentials();
        }
        var verdict = _hasher.VerifyHashedPassword(user, user.PasswordHash, password);
        if (verdict == PasswordVerificationResult.Failed) throw InvalidCredentials();
        if (verdict == PasswordVerificationResult.SuccessRehashNeeded) user.PasswordHash = _hasher.HashPassword(user, password);
        return await NewSessionAsync(db, user, Guid.NewGuid(), ct);
    }

    /// <summary>Spends a refresh token for a new session. A token used twice revokes every session of its login.</summary>
    public async Task<Session> RefreshAsync(string projectId, string? refreshToken, CancellationToken ct = default)
    {
        if (string.IsNullOrEmpty(refreshToken)) throw new AuthException(400, "validation_failed", "refresh_token is required");
        var hash = ProjectNaming.KeyHash(refreshToken);
        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var session = await db.EndUserSessions.FromSql(
                $"SELECT * FROM platform.end_user_sessions WHERE \"RefreshTokenHash\" = {hash} AND \"ProjectId\" = {projectId} FOR UPDATE")
            .FirstOrDefaultAsync(ct);
        var now = clock.GetUtcNow();
        if (session is null || session.RefreshExpiresAt <= now) throw InvalidRefresh();
        if (session.RevokedAt is not null)
        {
            // Reuse of a spent refresh token: someone else may hold it. End the whole login.
            var ended = await RevokeFamilyAsync(db, session.FamilyId, now, ct);
            await tx.CommitAsync(ct);
            foreach (var h in ended) await EndSessionAsync(projectId, h, ct);
            throw InvalidRefresh();
        }
        session.RevokedAt = now;
        var user = await db.EndUsers.SingleAsync(u => u.Id == session.UserId, ct);
        var result = await NewSessionAsync(db, user, session.FamilyId, ct);
        await tx.CommitAsync(ct);
        await EndSessionAsync(projectId, session.AccessTokenHash, ct); // the old access token stops, on every instance
        return result;
    }

    public async Task LogoutAsync(string accessToken, CancellationToken ct = default)
    {
        var hash = ProjectNaming.KeyHash(accessToken);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var projectId = await db.EndUserSessions.Where(s => s.AccessTokenHash == hash).Select(s => s.ProjectId).FirstOrDefaultAsync(ct);
        await db.EndUserSessions.Where(s => s.AccessTokenHash == hash && s.RevokedAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.RevokedAt, clock.GetUtcNow()), ct);
        if (projectId is not null) await EndSessionAsync(projectId, hash, ct);
        else Evict(hash);
    }

    /// <summary>
    /// Ends every session of an end user (GoTrue's logout scope "global"), or every one but the session of
    /// <paramref name="keepAccessToken"/> (scope "others"). Their tokens stop at once, on every instance.
    /// </summary>
    public async Task LogoutUserAsync(string projectId, Guid userId, string? keepAccessToken, CancellationToken ct = default)
    {
        var keep = keepAccessToken is null ? "" : ProjectNaming.KeyHash(keepAccessToken);
        await using var db = await contexts.CreateDbContextAsync(ct);
        await db.EndUserSessions.Where(s => s.ProjectId == projectId && s.UserId == userId && s.RevokedAt == null && s.AccessTokenHash != keep)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.RevokedAt, clock.GetUtcNow()), ct);
        await signals.PublishAsync(PlatformSignals.Topics.EndUser, projectId, ct, userId.ToString());
    }

    /// <summary>This instance and every other forget a session at once (its open streams end).</summary>
    private Task EndSessionAsync(string projectId, string accessHash, CancellationToken ct) =>
        signals.PublishAsync(PlatformSignals.Topics.Session, projectId, ct, accessHash);

    /// <summary>The principal of a valid access token, or null. Cached, so a REST request seldom asks the database.</summary>
    public async Task<SessionPrincipal?> ValidateAsync(string accessToken, CancellationToken ct = default)
    {
        var hash = ProjectNaming.KeyHash(accessToken);
        var now = clock.GetUtcNow();
        if (_cache.TryGet(hash, out var hit))
            return hit.ExpiresAt > now ? hit : null;
        // A session evicted while it was being read (role changed, user deleted, logout) is not cached as it was read.
        var evictions = Interlocked.Read(ref _evictions);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var row = await (from s in db.EndUserSessions
                         join u in db.EndUsers on s.UserId equals u.Id
                         where s.AccessTokenHash == hash && s.RevokedAt == null && s.AccessExpiresAt > now
                         select new { s.ProjectId, s.UserId, u.Role, s.AccessExpiresAt }).FirstOrDefaultAsync(ct);
        if (row is null) { _cache.Remove(hash); return null; }
        var principal = new SessionPrincipal(row.ProjectId, row.UserId, row.Role, row.AccessExpiresAt);
        if (Interlocked.Read(ref _evictions) == evictions) _cache.Set(hash, principal, CacheFor);
        return principal;
    }

    public async Task<EndUserInfo?> GetUserAsync(string projectId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var u = await db.EndUsers.AsNoTracking().FirstOrDefaultAsync(x => x.Id == userId && x.ProjectId == projectId, ct);
        return u is null ? null : Info(u);
    }

    public async Task<List<EndUserInfo>> ListUsersAsync(string projectId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return (await db.EndUsers.AsNoTracking().Where(u => u.ProjectId == projectId).OrderBy(u => u.CreatedAt).ToListAsync(ct))
            .Select(Info).ToList();
    }

    /// <summary>Sets an end user's role; their sessions see it at their next request.</summary>
    public async Task<EndUserInfo?> SetRoleAsync(string projectId, Guid userId, string role, CancellationToken ct = default)
    {
        if (!EndUserRoles.IsValid(role)) throw new AuthException(400, "validation_failed", "role must be \"user\" or \"admin\"");
        await using var db = await contexts.CreateDbContextAsync(ct);
        var u = await db.EndUsers.FirstOrDefaultAsync(x => x.Id == userId && x.ProjectId == projectId, ct);
        if (u is null) return null;
        u.Role = role;
        await db.SaveChangesAsync(ct);
        await signals.PublishAsync(PlatformSignals.Topics.EndUser, projectId, ct, userId.ToString());
        return Info(u);
    }

    public async Task<bool> DeleteUserAsync(string projectId, Guid userId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var n = await db.EndUsers.Where(x => x.Id == userId && x.ProjectId == projectId).ExecuteDeleteAsync(ct);
        await signals.PublishAsync(PlatformSignals.Topics.EndUser, projectId, ct, userId.ToString());
        return n > 0;
    }

    private async Task<Session> NewSessionAsync(PlatformDbContext db, EndUser user, Guid family, CancellationToken ct)
    {
        var access = ProjectNaming.RandomToken(32);
        var refresh = ProjectNaming.RandomToken(32);
        var now = clock.GetUtcNow();
        db.EndUserSessions.Add(new EndUserSession
        {
            Id = Guid.CreateVersion7(), ProjectId = user.ProjectId, UserId = user.Id, FamilyId = family,
            AccessTokenHash = ProjectNaming.KeyHash(access), RefreshTokenHash = ProjectNaming.KeyHash(refresh),
            AccessExpiresAt = now + AccessLifetime, RefreshExpiresAt = now + RefreshLifetime, CreatedAt = now,
        });
        await db.SaveChangesAsync(ct);
        return new Session(access, "bearer", (int)AccessLifetime.TotalSeconds, refresh, Info(user));
    }

    /// <summary>Revokes every session of a login; returns their access tokens' hashes (to announce after the commit).</summary>
    private static async Task<List<string>> RevokeFamilyAsync(PlatformDbContext db, Guid family, DateTimeOffset now, CancellationToken ct)
    {
        var hashes = await db.EndUserSessions.Where(s => s.FamilyId == family).Select(s => s.AccessTokenHash).ToListAsync(ct);
        await db.EndUserSessions.Where(s => s.FamilyId == family && s.RevokedAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.RevokedAt, now), ct);
        return hashes;
    }

    /// <summary>Forgets one cached session (signals: it ended on some instance).</summary>
    public void Evict(string accessHash)
    {
        Interlocked.Increment(ref _evictions);
        _cache.Remove(accessHash);
    }

    /// <summary>How many evictions there have been: a validation that raced one does not cache what it read.</summary>
    private long _evictions;

    /// <summary>Forgets an end user's cached sessions (signals: role changed, user deleted).</summary>
    public void EvictUser(Guid userId)
    {
        Interlocked.Increment(ref _evictions);
        _cache.RemoveWhere((_, p) => p.UserId == userId);
    }

    /// <summary>Forgets a project's cached sessions (signals: the project was deleted).</summary>
    public void EvictProject(string projectId)
    {
        Interlocked.Increment(ref _evictions);
        _cache.RemoveWhere((_, p) => p.ProjectId == projectId);
    }

    public void Dispose() => _cache.Dispose();

    private static EndUserInfo Info(EndUser u) => new(u.Id, u.Email, u.Role, u.CreatedAt);

    private static string ValidateEmail(string? email)
    {
        var e = email?.Trim();
        if (string.IsNullOrEmpty(e) || e.Length > 254 || !MailAddress.TryCreate(e, out var parsed) || parsed.Address != e)
            throw new AuthException(400, "validation_failed", "A valid email address is required");
        return e.ToLowerInvariant();
    }

    private static void ValidatePassword(string? password)
    {
        if (password is null || password.Length < MinPasswordLength)
            throw new AuthException(422, "weak_password", $"Password should be at least {MinPasswordLength} characters");
        if (password.Length > MaxPasswordLength)
            throw new AuthException(400, "validation_failed", $"Password must be at most {MaxPasswordLength} characters");
    }

    private static AuthException InvalidCredentials() => new(401, "invalid_credentials", "Invalid login credentials");
    private static AuthException InvalidRefresh() => new(401, "refresh_token_not_found", "Invalid Refresh Token");

    private static readonly Lazy<string> DummyHash = new(() =>
        new PasswordHasher<EndUser>().HashPassword(new EndUser { ProjectId = "", Email = "", NormalizedEmail = "", PasswordHash = "" }, "dummy-password"));
}
