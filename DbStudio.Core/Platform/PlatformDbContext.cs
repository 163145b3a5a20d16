// Platform metadata in schema `platform`: accounts (ASP.NET Core Identity), projects, their encrypted
// secrets, and the Data Protection key ring (shared by every app instance).
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace DbStudio.Core.Platform;

public sealed class PlatformUser : IdentityUser;

/// <summary>RestPassword: the password of the project's REST logins (RestConnections); never shown.</summary>
public enum ProjectSecretKind { OwnerPassword = 1, AnonKey = 2, ApiKey = 3, RestPassword = 4, StreamKey = 5 }

public sealed class Project
{
    /// <summary>Short lowercase id; the schema is proj_{Id}.</summary>
    public required string Id { get; set; }
    public required string Name { get; set; }
    public required string OwnerUserId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The PostgreSQL server its schema and roles live on (ProjectServers; DbStudio:Servers).</summary>
    public string Server { get; set; } = ServersOptions.Main;
    /// <summary>Set while the project is being moved to that server (its requests wait; ProjectMover).</summary>
    public string? MovingTo { get; set; }
    public List<ProjectSecret> Secrets { get; set; } = [];
}

public sealed class ProjectSecret
{
    public long Id { get; set; }
    public required string ProjectId { get; set; }
    public ProjectSecretKind Kind { get; set; }
    /// <summary>The secret, encrypted with ASP.NET Core Data Protection.</summary>
    public required string Protected { get; set; }
    /// <summary>SHA-256 of the secret (hex) for keys looked up on every request; null for passwords.</summary>
    public string? Hash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The Access tab's settings for one table (DESIGN §4); the RLS policies are generated from it.</summary>
public sealed class TableAccess
{
    public required string ProjectId { get; set; }
    public required string TableName { get; set; }
    public bool AnonSelect { get; set; }
    public bool AnonInsert { get; set; }
    public bool AuthInsert { get; set; } = true;
    public bool AuthSelectOwn { get; set; } = true;
    public bool AuthUpdateOwn { get; set; } = true;
    public bool AuthDeleteOwn { get; set; } = true;
    public string? UserIdColumn { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>An end user of a project (signs up through the project's REST auth endpoints).</summary>
public sealed class EndUser
{
    public Guid Id { get; set; }
    public required string ProjectId { get; set; }
    public required string Email { get; set; }
    public required string NormalizedEmail { get; set; }
    public required string PasswordHash { get; set; }
    public string Role { get; set; } = EndUserRoles.User;
    public DateTimeOffset CreatedAt { get; set; }
}

public static class EndUserRoles
{
    public const string User = "user";
    public const string Admin = "admin";
    public static bool IsValid(string? role) => role is User or Admin;
}

/// <summary>A signed-in session. Tokens are stored only as SHA-256 hashes.</summary>
public sealed class EndUserSession
{
    public Guid Id { get; set; }
    public required string ProjectId { get; set; }
    public Guid UserId { get; set; }
    /// <summary>All sessions that came from one login by refreshing; a reused refresh token revokes the family.</summary>
    public Guid FamilyId { get; set; }
    public required string AccessTokenHash { get; set; }
    public required string RefreshTokenHash { get; set; }
    public DateTimeOffset AccessExpiresAt { get; set; }
    public DateTimeOffset RefreshExpiresAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

public sealed class PlatformDbContext(DbContextOptions<PlatformDbContext> options)
    : IdentityDbContext<PlatformUser>(options), IDataProtectionKeyContext
{
    public const string Schema = "platform";

    public DbSet<Project> Projects => Set<Project>();
    public DbSet<ProjectSecret> ProjectSecrets => Set<ProjectSecret>();
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();
    public DbSet<TableAccess> TableAccess => Set<TableAccess>();
    public DbSet<EndUser> EndUsers => Set<EndUser>();
    public DbSet<EndUserSession> EndUserSessions => Set<EndUserSession>();

    protected override void OnModelCreating(ModelBuilder b)
    {
        base.OnModelCreating(b);
        b.HasDefaultSchema(Schema);
        b.Entity<Project>(e =>
        {
            e.ToTable("projects");
            e.HasKey(p => p.Id);
            e.Property(p => p.Id).HasMaxLength(32);
            e.Property(p => p.Name).HasMaxLength(200);
            e.Property(p => p.Server).HasMaxLength(63);
            e.Property(p => p.MovingTo).HasMaxLength(63);
            e.HasIndex(p => p.OwnerUserId);
            e.HasOne<PlatformUser>().WithMany().HasForeignKey(p => p.OwnerUserId).OnDelete(DeleteBehavior.Cascade);
            e.HasMany(p => p.Secrets).WithOne().HasForeignKey(s => s.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<ProjectSecret>(e =>
        {
            e.ToTable("project_secrets");
            e.HasIndex(s => new { s.ProjectId, s.Kind }).IsUnique();
            e.HasIndex(s => s.Hash).IsUnique();
        });
        b.Entity<DataProtectionKey>().ToTable("data_protection_keys");
        b.Entity<TableAccess>(e =>
        {
            e.ToTable("table_access");
            e.HasKey(t => new { t.ProjectId, t.TableName });
            e.Property(t => t.TableName).HasMaxLength(63);
            e.HasOne<Project>().WithMany().HasForeignKey(t => t.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<EndUser>(e =>
        {
            e.ToTable("end_users");
            e.HasIndex(u => new { u.ProjectId, u.NormalizedEmail }).IsUnique();
            e.Property(u => u.Email).HasMaxLength(254);
            e.Property(u => u.NormalizedEmail).HasMaxLength(254);
            e.Property(u => u.Role).HasMaxLength(16);
            e.HasOne<Project>().WithMany().HasForeignKey(u => u.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<EndUserSession>(e =>
        {
            e.ToTable("end_user_sessions");
            e.HasIndex(x => x.AccessTokenHash).IsUnique();
            e.HasIndex(x => x.RefreshTokenHash).IsUnique();
            e.HasIndex(x => x.FamilyId);
            e.HasIndex(x => x.UserId);
            e.HasOne<EndUser>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
        });
    }
}

/// <summary>For `dotnet ef migrations add`: no server is contacted.</summary>
public sealed class DesignTimeFactory : IDesignTimeDbContextFactory<PlatformDbContext>
{
    public PlatformDbContext CreateDbContext(string[] args) => new(new DbContextOptionsBuilder<PlatformDbContext>()
        .UseNpgsql("Host=localhost;Database=dbstudio", o => o.MigrationsHistoryTable("__ef_migrations", PlatformDbContext.Schema))
        .Options);
}
