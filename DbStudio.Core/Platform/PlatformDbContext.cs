// Platform metadata in schema `platform`: accounts (ASP.NET Core Identity), projects, their encrypted
// secrets, and the Data Protection key ring (shared by every app instance).
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace DbStudio.Core.Platform;

public sealed class PlatformUser : IdentityUser;

public enum ProjectSecretKind { OwnerPassword = 1, AnonKey = 2, ApiKey = 3 }

public sealed class Project
{
    /// <summary>Short lowercase id; the schema is proj_{Id}.</summary>
    public required string Id { get; set; }
    public required string Name { get; set; }
    public required string OwnerUserId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
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

public sealed class PlatformDbContext(DbContextOptions<PlatformDbContext> options)
    : IdentityDbContext<PlatformUser>(options), IDataProtectionKeyContext
{
    public const string Schema = "platform";

    public DbSet<Project> Projects => Set<Project>();
    public DbSet<ProjectSecret> ProjectSecrets => Set<ProjectSecret>();
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

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
    }
}

/// <summary>For `dotnet ef migrations add`: no server is contacted.</summary>
public sealed class DesignTimeFactory : IDesignTimeDbContextFactory<PlatformDbContext>
{
    public PlatformDbContext CreateDbContext(string[] args) => new(new DbContextOptionsBuilder<PlatformDbContext>()
        .UseNpgsql("Host=localhost;Database=dbstudio", o => o.MigrationsHistoryTable("__ef_migrations", PlatformDbContext.Schema))
        .Options);
}
