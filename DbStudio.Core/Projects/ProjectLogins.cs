// A project's four REST logins — proj_{id}_rest_anon, _rest_user, _rest_admin, _rest_owner: LOGIN NOINHERIT, no
// privilege of their own, each a member of exactly one of the project's roles, which it switches to (SET ROLE) once
// when a connection is opened (ProjectConnectionPool keeps those connections). This service names them, creates them
// on first use (also for projects made before they existed) and keeps their password — generated, encrypted with the
// project's other secrets, never shown. The roles are PostgreSQL's (DDL on the platform's connection); the secret is
// platform metadata, read and written through EF in the same transaction.
using DbStudio.Core.Platform;
using DbStudio.Core.Sql;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

/// <summary>Which of the project's roles a REST connection acts as.</summary>
public enum RestRole { Anon, User, UserAdmin, Owner }

public sealed class ProjectLogins(IDbContextFactory<PlatformDbContext> contexts, SecretProtector protector, ProjectServers servers,
    IOptions<DbStudioOptions> options)
{
    public static readonly RestRole[] Roles = [RestRole.Anon, RestRole.User, RestRole.UserAdmin, RestRole.Owner];

    /// <summary>Taken (transaction-scoped) by whatever grants or revokes the logins' CONNECT: one pg_database row.</summary>
    public const string LoginsLockSql = "SELECT pg_advisory_xact_lock(hashtext('dbstudio-rest-logins'));";

    /// <summary>The login role REST uses for <paramref name="role"/> in project <paramref name="id"/>.</summary>
    public static string LoginRole(string id, RestRole role) => $"proj_{id}_rest_" + role switch
    {
        RestRole.Anon => "anon", RestRole.User => "user", RestRole.UserAdmin => "admin", _ => "owner",
    };

    /// <summary>The project role a REST connection for <paramref name="role"/> acts as.</summary>
    public static string ActingRole(string id, RestRole role) => role switch
    {
        RestRole.Anon => ProjectNaming.AnonRole(id),
        RestRole.User => ProjectNaming.UserRole(id),
        RestRole.UserAdmin => ProjectNaming.UserAdminRole(id),
        _ => ProjectNaming.OwnerRole(id),
    };

    public static IEnumerable<string> LoginRoles(string id) => Roles.Select(r => LoginRole(id, r));

    /// <summary>
    /// Makes sure the project's four REST logins exist with the password kept in platform metadata, creating them (and
    /// the password) when missing; <paramref name="renew"/> sets a new password on all four. Returns the password.
    /// </summary>
    public async Task<string> EnsureAsync(string id, bool renew, CancellationToken ct)
    {
        if (!ProjectNaming.IsValidId(id)) throw new ArgumentException("invalid project id", nameof(id));
        var server = await servers.OfAsync(id, ct);
        await using var db = await contexts.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // The logins are roles of the project's server; their password is platform metadata. On another server than the
        // platform's, the metadata commits first and the roles second, under the lock: a failure in between leaves a
        // password the logins do not have, which the first connection that fails renews (RestConnections).
        await using var on = await ServerTransaction.BeginAsync(server,
            (NpgsqlConnection)db.Database.GetDbConnection(), (NpgsqlTransaction)tx.GetDbTransaction(), ct);
        var conn = on.Connection;
        var npgsqlTx = on.Transaction;
        // One lock for all projects: GRANT CONNECT of two projects at once would update the same pg_database row
        // ("tuple concurrently updated"). Logins are made once per project, so this is not a queue in practice.
        await using (var lockCmd = new NpgsqlCommand(LoginsLockSql, conn, npgsqlTx))
            await lockCmd.ExecuteNonQueryAsync(ct);
        var secret = await db.ProjectSecrets.SingleOrDefaultAsync(s => s.ProjectId == id && s.Kind == ProjectSecretKind.RestPassword, ct);
        var loginsExist = await CountLoginsAsync(conn, npgsqlTx, id, ct) == Roles.Length;
        if (secret is not null && loginsExist && !renew) return protector.Unprotect(secret.Protected);

        var moving = await db.Projects.Where(p => p.Id == id).Select(p => new { p.MovingTo }).SingleOrDefaultAsync(ct)
            ?? throw new KeyNotFoundException($"project {id} does not exist");
        // A project being moved keeps its logins shut (ProjectMover) until the move ends.
        if (moving.MovingTo is not null) throw new ProjectMovingException($"Project {id} is being moved to another server; try again shortly");
        var password = ProjectNaming.NewPassword();
        // PASSWORD takes no parameter: a SCRAM verifier is the literal, so neither the server nor its log sees the password.
        // The password is 32 random letters and digits (~190 bits): key stretching adds nothing to it, and cheap
        // verification keeps opening a connection (when the budget makes room for another project) cheap.
        var verifier = SqlText.Literal(Scram.Verifier(password, iterations: 16));
        var limit = options.Value.Rest.EffectiveLoginConnectionLimit;
        var sql = new System.Text.StringBuilder();
        foreach (var role in Roles)
        {
            var login = LoginRole(id, role);
            sql.Append($"""
                DO $do$ BEGIN
                  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {SqlText.Literal(login)}) THEN
                    CREATE ROLE {SqlText.Ident(login)} LOGIN NOINHERIT;
                  END IF;
                END $do$;
                ALTER ROLE {SqlText.Ident(login)} LOGIN NOINHERIT CONNECTION LIMIT {limit} PASSWORD {verifier};
                GRANT {SqlText.Ident(ActingRole(id, role))} TO {SqlText.Ident(login)};
                GRANT CONNECT ON DATABASE {SqlText.Ident(conn.Database)} TO {SqlText.Ident(login)};

                """);
        }
        await using (var create = new NpgsqlCommand(sql.ToString(), conn, npgsqlTx)) await create.ExecuteNonQueryAsync(ct);
        var now = DateTimeOffset.UtcNow;
        if (secret is null)
            db.ProjectSecrets.Add(new ProjectSecret
            {
                ProjectId = id, Kind = ProjectSecretKind.RestPassword, Protected = protector.Protect(password), CreatedAt = now,
            });
        else
        {
            secret.Protected = protector.Protect(password);
            secret.CreatedAt = now;
        }
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        await on.CommitAsync(ct);
        return password;
    }

    private static async Task<long> CountLoginsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string id, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin", conn, tx);
        cmd.Parameters.Add(new() { Value = LoginRoles(id).ToArray() });
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }
}
