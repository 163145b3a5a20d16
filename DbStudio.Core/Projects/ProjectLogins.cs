// A project's two REST logins (issue 17): proj_{id}_rest — a member of the project's anon, user and user_admin roles — and
// proj_{id}_rest_owner — a member of the owner. Both LOGIN NOINHERIT with no privilege of their own: a request's
// transaction takes its role (set_config('role', …, true), in the same round trip as the statement), so one connection
// of proj_{id}_rest serves anonymous callers, end users and admin end users of its project alike, and a project's
// traffic needs one pooled connection where it needed one per kind of caller. Each login reaches only its own
// project's roles: cross-project isolation is PostgreSQL's membership check. Inside a project, code the owner wrote
// (a trigger, a policy function) that runs for an anonymous caller can SET ROLE to the project's user or user_admin role
// (never to the owner: that login is another one) — the trade-off README describes. This service names the logins,
// creates them on first use (also for projects made before they existed, dropping the four per-kind logins of older
// versions) and keeps their password — generated, encrypted with the project's other secrets, never shown. The roles
// are PostgreSQL's (DDL on the platform's connection); the secret is platform metadata, read and written through EF in
// the same transaction.
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
    public static readonly string LoginsLockSql = Platform.PlatformLocks.RestLogins;

    /// <summary>The login role REST uses for <paramref name="role"/> in project <paramref name="id"/>: the owner's, or the shared one.</summary>
    public static string LoginRole(string id, RestRole role) => role == RestRole.Owner ? $"proj_{id}_rest_owner" : $"proj_{id}_rest";

    /// <summary>The project role a REST connection for <paramref name="role"/> acts as.</summary>
    public static string ActingRole(string id, RestRole role) => role switch
    {
        RestRole.Anon => ProjectNaming.AnonRole(id),
        RestRole.User => ProjectNaming.UserRole(id),
        RestRole.UserAdmin => ProjectNaming.UserAdminRole(id),
        _ => ProjectNaming.OwnerRole(id),
    };

    /// <summary>Whether a login acts as more than one role, so that each use must say which (per transaction).</summary>
    public static bool IsShared(RestRole role) => role != RestRole.Owner;

    /// <summary>The project's REST logins (two).</summary>
    public static IEnumerable<string> LoginRoles(string id) => [LoginRole(id, RestRole.Anon), LoginRole(id, RestRole.Owner)];

    /// <summary>The per-kind logins of versions before issue 17 (anon, user, admin): dropped on first use and with the project.</summary>
    public static IEnumerable<string> LegacyLoginRoles(string id) => [$"proj_{id}_rest_anon", $"proj_{id}_rest_user", $"proj_{id}_rest_admin"];

    /// <summary>
    /// The logins' password as kept in platform metadata (one indexed read, no lock): the fast path of a project's first
    /// connection. Null when there is none yet (<see cref="EnsureAsync"/> makes it). That the logins exist with it is
    /// PostgreSQL's to say: when they do not, logging in fails and the caller ensures them.
    /// </summary>
    public async Task<string?> PasswordAsync(string id, CancellationToken ct)
    {
        try
        {
            await using var db = await contexts.CreateDbContextAsync(ct);
            var secret = await db.ProjectSecrets.AsNoTracking()
                .Where(s => s.ProjectId == id && s.Kind == ProjectSecretKind.RestPassword).Select(s => s.Protected).SingleOrDefaultAsync(ct);
            return secret is null ? null : protector.Unprotect(secret);
        }
        catch (InvalidOperationException e) when (e.InnerException is NpgsqlException unreachable)
        {
            // EF Core wraps a connection failure ("likely due to a transient failure"): callers answer it as the database
            // being away (503, retried), as they do for the connection to the project itself.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(unreachable);
            throw;
        }
    }

    /// <summary>
    /// Makes sure the project's four REST logins exist with the password kept in platform metadata, creating them (and
    /// the password) when missing; <paramref name="renew"/> sets a new password on all four — unless
    /// <paramref name="failedPassword"/> (the one a login refused) is no longer the kept one: then another instance renewed
    /// it meanwhile and the kept one is returned as it is. Returns the password.
    /// </summary>
    public async Task<string> EnsureAsync(string id, bool renew, CancellationToken ct, string? failedPassword = null)
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
        var (current, legacy) = await CountLoginsAsync(conn, npgsqlTx, id, ct);
        if (secret is not null && current == 2 && legacy == 0)
        {
            var kept = protector.Unprotect(secret.Protected);
            if (!renew || failedPassword is not null && kept != failedPassword) return kept;
        }

        var moving = await db.Projects.Where(p => p.Id == id).Select(p => new { p.MovingTo }).SingleOrDefaultAsync(ct)
            ?? throw new KeyNotFoundException($"project {id} does not exist");
        // A project being moved keeps its logins shut (ProjectMover) until the move ends.
        if (moving.MovingTo is not null) throw new ProjectMovingException($"Project {id} is being moved to another server; try again shortly");
        var password = secret is not null && !renew ? protector.Unprotect(secret.Protected) : ProjectNaming.NewPassword();
        // PASSWORD takes no parameter: a SCRAM verifier is the literal, so neither the server nor its log sees the password.
        // The password is 32 random letters and digits (~190 bits): key stretching adds nothing to it, and cheap
        // verification keeps opening a connection (when the budget makes room for another project) cheap.
        var verifier = SqlText.Literal(Scram.Verifier(password, iterations: 16));
        var limit = options.Value.Rest.EffectiveLoginConnectionLimit;
        var database = SqlText.Ident(conn.Database);
        var sql = new System.Text.StringBuilder();
        foreach (var (login, acting) in new[]
                 {
                     (LoginRole(id, RestRole.Anon), new[] { RestRole.Anon, RestRole.User, RestRole.UserAdmin }),
                     (LoginRole(id, RestRole.Owner), new[] { RestRole.Owner }),
                 })
        {
            sql.Append($"""
                DO $do$ BEGIN
                  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {SqlText.Literal(login)}) THEN
                    CREATE ROLE {SqlText.Ident(login)} LOGIN NOINHERIT;
                  END IF;
                END $do$;
                ALTER ROLE {SqlText.Ident(login)} LOGIN NOINHERIT CONNECTION LIMIT {limit} PASSWORD {verifier};
                GRANT {string.Join(", ", acting.Select(r => SqlText.Ident(ActingRole(id, r))))} TO {SqlText.Ident(login)};
                GRANT CONNECT ON DATABASE {database} TO {SqlText.Ident(login)};

                """);
        }
        // The per-kind logins of older versions: no new session, then gone (a role can be dropped under open sessions,
        // which can then do nothing; the pools of this instance never open them again).
        foreach (var old in LegacyLoginRoles(id))
            sql.Append($"""
                DO $do$ BEGIN
                  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {SqlText.Literal(old)}) THEN
                    REVOKE ALL ON DATABASE {database} FROM {SqlText.Ident(old)};
                    DROP ROLE {SqlText.Ident(old)};
                  END IF;
                END $do$;

                """);
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

    private static async Task<(long Current, long Legacy)> CountLoginsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string id, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            "SELECT count(*) FILTER (WHERE rolname = ANY($1) AND rolcanlogin), count(*) FILTER (WHERE rolname = ANY($2)) FROM pg_roles " +
            "WHERE rolname = ANY($1) OR rolname = ANY($2)", conn, tx);
        cmd.Parameters.Add(new() { Value = LoginRoles(id).ToArray() });
        cmd.Parameters.Add(new() { Value = LegacyLoginRoles(id).ToArray() });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        return (r.GetInt64(0), r.GetInt64(1));
    }
}
