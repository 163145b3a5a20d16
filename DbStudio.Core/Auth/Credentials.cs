// Turns what a REST or SSE request carries (apikey, Authorization: Bearer, query parameters) into a caller:
// ANON key → anon, DB_API_KEY → admin, session token → end user (DESIGN §3). Keys are looked up by hash, cached.
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using Microsoft.EntityFrameworkCore;

namespace DbStudio.Core.Auth;

public sealed class Credentials(IDbContextFactory<PlatformDbContext> contexts, EndUserAuth endUsers, TimeProvider clock) : IDisposable
{
    private sealed record KeyEntry(string? ProjectId, ProjectSecretKind Kind);

    private static readonly TimeSpan KeyCacheFor = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan MissCacheFor = TimeSpan.FromSeconds(30);
    /// <summary>Key hash → the project and kind it is (or none: a miss), least recently used dropped past the limit.</summary>
    private readonly BoundedCache<string, KeyEntry> _keys = new(clock, sizeLimit: 100_000);

    /// <summary>
    /// The caller for <paramref name="projectId"/>, or null when nothing valid for this project was sent (401).
    /// A bearer token decides when present; otherwise the apikey. Any credential of another project is refused.
    /// </summary>
    public async Task<RestCaller?> ResolveAsync(string projectId, string? apiKey, string? bearer, CancellationToken ct = default)
    {
        RestCaller? fromKey = null;
        if (!string.IsNullOrEmpty(apiKey))
        {
            fromKey = await FromKeyAsync(projectId, apiKey, ct);
            if (fromKey is null) return null; // an apikey that is not this project's
        }
        if (string.IsNullOrEmpty(bearer)) return fromKey;
        if (bearer.StartsWith(ProjectNaming.AnonKeyPrefix, StringComparison.Ordinal) || bearer.StartsWith(ProjectNaming.ApiKeyPrefix, StringComparison.Ordinal))
            return await FromKeyAsync(projectId, bearer, ct);
        var session = await endUsers.ValidateAsync(bearer, ct);
        if (session is null || session.ProjectId != projectId) return null;
        return new RestCaller(projectId, CallerKind.User, session.UserId, session.Role);
    }

    /// <summary>True when <paramref name="key"/> is this project's ANON key or DB_API_KEY.</summary>
    public async Task<bool> IsProjectKeyAsync(string projectId, string? key, CancellationToken ct = default) =>
        !string.IsNullOrEmpty(key) && await FromKeyAsync(projectId, key, ct) is not null;

    /// <summary>Forgets cached keys of a project (rotation, deletion).</summary>
    public void Forget(string projectId) => _keys.RemoveWhere((_, e) => e.ProjectId == projectId);

    public void Dispose() => _keys.Dispose();

    private async Task<RestCaller?> FromKeyAsync(string projectId, string key, CancellationToken ct)
    {
        if (key.Length > 200) return null;
        var hash = ProjectNaming.KeyHash(key);
        if (!_keys.TryGet(hash, out var e))
        {
            await using var db = await contexts.CreateDbContextAsync(ct);
            var row = await db.ProjectSecrets.AsNoTracking().Where(s => s.Hash == hash)
                .Select(s => new { s.ProjectId, s.Kind }).FirstOrDefaultAsync(ct);
            e = new KeyEntry(row?.ProjectId, row?.Kind ?? 0);
            _keys.Set(hash, e, e.ProjectId is null ? MissCacheFor : KeyCacheFor);
        }
        if (e.ProjectId != projectId) return null;
        return e.Kind switch
        {
            ProjectSecretKind.AnonKey => new RestCaller(projectId, CallerKind.Anon),
            ProjectSecretKind.ApiKey => new RestCaller(projectId, CallerKind.Admin),
            _ => null,
        };
    }
}
