// Projects of platform users: create (provision), list, read, delete. Only the owner sees a project.
using DbStudio.Core.Platform;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

/// <summary>A project as its owner sees it, credentials included (the management API's JSON shape).</summary>
public sealed record ProjectInfo(string Id, string Name, string Schema, string RestUrl, string AnonKey, string ApiKey,
    string ConnectionUrl, DateTimeOffset CreatedAt)
{
    /// <summary>supabase-js's SUPABASE_URL, {host}/db/{id}/supabase: createClient(SupabaseUrl, AnonKey) (DESIGN §5).</summary>
    public string SupabaseUrl => RestUrl.EndsWith("/rest", StringComparison.Ordinal) ? RestUrl[..^"/rest".Length] + "/supabase" : RestUrl;

    /// <summary>The few lines that connect supabase-js to this project (the panel's copyable snippet).</summary>
    public string SupabaseSnippet =>
        $"import {{ createClient }} from '@supabase/supabase-js'\n\nconst supabase = createClient('{SupabaseUrl}', '{AnonKey}')\n";
}

/// <summary>Safe to hold for a long time (Blazor circuits): every operation uses a DbContext of its own.</summary>
public sealed class ProjectService(
    IDbContextFactory<PlatformDbContext> contexts,
    ProjectServers servers,
    SecretProtector protector,
    OwnerConnections ownerConnections,
    Projects.RestConnections restConnections,
    PlatformSignals signals,
    IOptions<DbStudioOptions> options,
    Limits.PlatformLimits limits)
{
    public const int MaxNameLength = 100;

    public static string? ValidateName(string? name) =>
        string.IsNullOrWhiteSpace(name) ? "name is required"
        : name.Trim().Length > MaxNameLength ? $"name is longer than {MaxNameLength} characters"
        : name.Any(char.IsControl) ? "name contains control characters"
        : null;

    public async Task<ProjectInfo> CreateAsync(string ownerUserId, string name, string publicBaseUrl, CancellationToken ct = default)
    {
        if (ValidateName(name) is { } problem) throw new ArgumentException(problem, nameof(name));
        await limits.CheckProjectCreationAsync(ownerUserId, ct); // the account's quota and creation rate (PlatformLimitException)
        var id = ProjectNaming.NewId();
        var password = ProjectNaming.NewPassword();
        var anonKey = ProjectNaming.NewAnonKey();
        var apiKey = ProjectNaming.NewApiKey();
        var now = DateTimeOffset.UtcNow;
        var server = await servers.PlaceAsync(ct);
        var project = new Project
        {
            Id = id, Name = name.Trim(), OwnerUserId = ownerUserId, CreatedAt = now, Server = server.Name,
            Secrets =
            [
                Secret(id, ProjectSecretKind.OwnerPassword, password, hash: false, now),
                Secret(id, ProjectSecretKind.AnonKey, anonKey, hash: true, now),
                Secret(id, ProjectSecretKind.ApiKey, apiKey, hash: true, now),
            ],
        };

        // Roles, schema and metadata commit together or not at all. On another server than the platform's, the roles and
        // schema commit there first: a failure before the metadata commits leaves roles no project names (a new id is
        // drawn next time), never a project without its schema.
        await using var db = await contexts.CreateDbContextAsync(ct);
        var strategy = db.Database.CreateExecutionStrategy();
        await strategy.ExecuteAsync(async () =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            await using var on = await ServerTransaction.BeginAsync(server,
                (NpgsqlConnection)db.Database.GetDbConnection(), (NpgsqlTransaction)tx.GetDbTransaction(), ct);
            await ProjectProvisioner.CreateAsync(on.Connection, on.Transaction, id, password, options.Value.OwnerConnectionLimit, ct);
            db.Projects.Add(project);
            await db.SaveChangesAsync(ct);
            await on.CommitAsync(ct);
            await tx.CommitAsync(ct);
        });
        return ToInfo(project, publicBaseUrl, password, anonKey, apiKey);
    }

    public async Task<List<ProjectInfo>> ListAsync(string ownerUserId, string publicBaseUrl, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var projects = await db.Projects.AsNoTracking().Include(p => p.Secrets)
            .Where(p => p.OwnerUserId == ownerUserId).OrderBy(p => p.CreatedAt).ToListAsync(ct);
        return projects.Select(p => ToInfo(p, publicBaseUrl)).ToList();
    }

    /// <summary>The project if <paramref name="ownerUserId"/> owns it; null otherwise (callers answer 404).</summary>
    public async Task<ProjectInfo?> GetAsync(string ownerUserId, string id, string publicBaseUrl, CancellationToken ct = default)
    {
        var p = await FindOwnedAsync(ownerUserId, id, ct);
        return p is null ? null : ToInfo(p, publicBaseUrl);
    }

    public async Task<bool> IsOwnerAsync(string ownerUserId, string id, CancellationToken ct = default)
    {
        if (!ProjectNaming.IsValidId(id)) return false;
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await db.Projects.AnyAsync(p => p.Id == id && p.OwnerUserId == ownerUserId, ct);
    }

    /// <summary>
    /// Drops schema, roles and metadata. False when the project does not exist or is not the caller's. The schema and
    /// everything in it are dropped by the project's owner on the project's own login (DROP OWNED BY itself): the
    /// platform's login never touches a project object; it only drops the emptied roles and its own metadata.
    /// </summary>
    public async Task<bool> DeleteAsync(string ownerUserId, string id, CancellationToken ct = default)
    {
        if (!await IsOwnerAsync(ownerUserId, id, ct)) return false;
        var server = await servers.OfAsync(id, ct); // its roles are that server's
        // No new sessions through the Connection URL; then end those open, the app's own pools included.
        await using (var nologin = server.DataSource.CreateCommand($"ALTER ROLE {Sql.SqlText.Ident(ProjectNaming.OwnerRole(id))} NOLOGIN"))
            await nologin.ExecuteNonQueryAsync(ct);
        ownerConnections.Forget(id);
        restConnections.Forget(id);
        await restConnections.WithDedicatedAsync(id, Projects.RestRole.Owner, async owner =>
        {
            await using (var end = new NpgsqlCommand(ProjectProvisioner.TerminateOwnerSessionsSql, owner))
                await end.ExecuteNonQueryAsync(ct);
            await using var drop = new NpgsqlCommand(ProjectProvisioner.DropOwnedSql(id), owner);
            await drop.ExecuteNonQueryAsync(ct);
        }, ct);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var strategy = db.Database.CreateExecutionStrategy();
        await strategy.ExecuteAsync(async () =>
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            await using var on = await ServerTransaction.BeginAsync(server,
                (NpgsqlConnection)db.Database.GetDbConnection(), (NpgsqlTransaction)tx.GetDbTransaction(), ct);
            await ProjectProvisioner.DropAsync(on.Connection, on.Transaction, id, ct);
            await on.CommitAsync(ct);
            await db.Projects.Where(p => p.Id == id).ExecuteDeleteAsync(ct);
            await tx.CommitAsync(ct);
        });
        // Every instance (this one first) forgets the project's keys, sessions, settings, pools and console history, ends its
        // streams and drops its change log.
        await signals.PublishAsync(PlatformSignals.Topics.Project, id, ct);
        return true;
    }

    /// <summary>
    /// Replaces the ANON key or the DB_API_KEY: the old one stops working at once, on every instance; the other key is
    /// untouched. Null when the project is not the caller's.
    /// </summary>
    public async Task<ProjectInfo?> RotateKeyAsync(string ownerUserId, string id, ProjectSecretKind kind, string publicBaseUrl,
        CancellationToken ct = default)
    {
        if (kind is not (ProjectSecretKind.AnonKey or ProjectSecretKind.ApiKey)) throw new ArgumentOutOfRangeException(nameof(kind));
        if (!await IsOwnerAsync(ownerUserId, id, ct)) return null;
        var key = kind == ProjectSecretKind.AnonKey ? ProjectNaming.NewAnonKey() : ProjectNaming.NewApiKey();
        await using (var db = await contexts.CreateDbContextAsync(ct))
            await db.ProjectSecrets.Where(s => s.ProjectId == id && s.Kind == kind).ExecuteUpdateAsync(u => u
                .SetProperty(s => s.Protected, protector.Protect(key))
                .SetProperty(s => s.Hash, ProjectNaming.KeyHash(key))
                .SetProperty(s => s.CreatedAt, DateTimeOffset.UtcNow), ct);
        await signals.PublishAsync(PlatformSignals.Topics.Keys, id, ct);
        return await GetAsync(ownerUserId, id, publicBaseUrl, ct);
    }

    /// <summary>
    /// Gives the owner role a new password (as a SCRAM verifier) and the Connection URL with it. Also repairs a project
    /// whose owner changed the password itself (ALTER ROLE … PASSWORD from the console).
    /// </summary>
    public async Task<ProjectInfo?> ResetOwnerPasswordAsync(string ownerUserId, string id, string publicBaseUrl, CancellationToken ct = default)
    {
        if (!await IsOwnerAsync(ownerUserId, id, ct)) return null;
        var password = ProjectNaming.NewPassword();
        var server = await servers.OfAsync(id, ct);
        await using (var db = await contexts.CreateDbContextAsync(ct))
        {
            var strategy = db.Database.CreateExecutionStrategy();
            await strategy.ExecuteAsync(async () =>
            {
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                await using var on = await ServerTransaction.BeginAsync(server,
                    (NpgsqlConnection)db.Database.GetDbConnection(), (NpgsqlTransaction)tx.GetDbTransaction(), ct);
                await using (var alter = new NpgsqlCommand(
                    $"ALTER ROLE {Sql.SqlText.Ident(ProjectNaming.OwnerRole(id))} PASSWORD {Sql.SqlText.Literal(Sql.Scram.Verifier(password))}",
                    on.Connection, on.Transaction))
                    await alter.ExecuteNonQueryAsync(ct);
                await db.ProjectSecrets.Where(s => s.ProjectId == id && s.Kind == ProjectSecretKind.OwnerPassword)
                    .ExecuteUpdateAsync(u => u.SetProperty(s => s.Protected, protector.Protect(password))
                        .SetProperty(s => s.CreatedAt, DateTimeOffset.UtcNow), ct);
                await on.CommitAsync(ct);
                await tx.CommitAsync(ct);
            });
        }
        await signals.PublishAsync(PlatformSignals.Topics.Owner, id, ct); // console pools reconnect with the new password
        return await GetAsync(ownerUserId, id, publicBaseUrl, ct);
    }

    private async Task<Project?> FindOwnedAsync(string ownerUserId, string id, CancellationToken ct)
    {
        if (!ProjectNaming.IsValidId(id)) return null;
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await db.Projects.AsNoTracking().Include(p => p.Secrets)
            .FirstOrDefaultAsync(p => p.Id == id && p.OwnerUserId == ownerUserId, ct);
    }

    private ProjectSecret Secret(string id, ProjectSecretKind kind, string value, bool hash, DateTimeOffset now) => new()
    {
        ProjectId = id, Kind = kind, Protected = protector.Protect(value),
        Hash = hash ? ProjectNaming.KeyHash(value) : null, CreatedAt = now,
    };

    private ProjectInfo ToInfo(Project p, string publicBaseUrl)
    {
        string Get(ProjectSecretKind k) => protector.Unprotect(p.Secrets.Single(s => s.Kind == k).Protected);
        return ToInfo(p, publicBaseUrl, Get(ProjectSecretKind.OwnerPassword), Get(ProjectSecretKind.AnonKey), Get(ProjectSecretKind.ApiKey));
    }

    private ProjectInfo ToInfo(Project p, string publicBaseUrl, string password, string anonKey, string apiKey) =>
        new(p.Id, p.Name, ProjectNaming.Schema(p.Id), $"{publicBaseUrl.TrimEnd('/')}/db/{p.Id}/rest", anonKey, apiKey,
            OwnerConnections.ConnectionUrl(p.Id, password, servers.Named(p.Server)), p.CreatedAt);
}
