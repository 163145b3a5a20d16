// Who may execute a project's functions (DESIGN §5, the Access tab's Functions section): nobody but the owner (and so the
// DB_API_KEY) until the owner allows a function for anon and/or signed-in end users. The setting is PostgreSQL's own
// privilege — GRANT/REVOKE EXECUTE to the project's anon, user and user_admin roles, run as the owner on the project's
// own login — read back with has_function_privilege; nothing is stored on the side. It applies to a function name: every
// overload of it. The secure default itself (no EXECUTE for PUBLIC) is kept by FunctionCatalog whenever it loads.
using DbStudio.Core.Catalog;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DbStudio.Core.Access;

/// <summary>The JSON shape of GET|PUT /api/projects/{id}/functions/{fn}/access.</summary>
public sealed record FunctionAccessSettings(bool anon_execute, bool auth_execute);

/// <summary>A function name as the Access tab lists it: its overloads, and who may execute all of them.</summary>
public sealed record FunctionSummary(string Name, IReadOnlyList<string> Signatures, string Returns, string Volatility, bool SecurityDefiner,
    bool AnonExecute, bool AuthExecute);

public sealed class FunctionAccess(ProjectServers servers, FunctionCatalog functions, RestConnections connections, PlatformSignals signals,
    ILogger<FunctionAccess> log)
{
    /// <summary>Every function of the project, by name, read fresh from the catalog.</summary>
    public async Task<IReadOnlyList<FunctionSummary>> ListAsync(string projectId, CancellationToken ct = default)
    {
        var snapshot = await functions.ReloadAsync(projectId);
        return snapshot.Functions.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => Summarize(kv.Key, kv.Value)).ToList();
    }

    /// <summary>The settings of a function name; null when the project has no function of that name.</summary>
    public async Task<FunctionAccessSettings?> GetAsync(string projectId, string name, CancellationToken ct = default)
    {
        var snapshot = await functions.ReloadAsync(projectId);
        return snapshot.Functions.TryGetValue(name, out var overloads) ? Settings(overloads) : null;
    }

    /// <summary>Grants or revokes EXECUTE on every overload of <paramref name="name"/>; null when there is no such function.</summary>
    public async Task<FunctionAccessSettings?> PutAsync(string projectId, string name, FunctionAccessSettings settings, CancellationToken ct = default)
    {
        var snapshot = await functions.ReloadAsync(projectId);
        if (!snapshot.Functions.TryGetValue(name, out var overloads)) return null;
        var sql = GenerateSql(projectId, overloads.Select(f => (f.Schema, f.Name, f.IdentityArguments)), settings);
        await connections.AsOwnerAsync(projectId, async conn =>
        {
            await using var tx = await conn.BeginTransactionAsync(ct);
            await using (var cmd = new NpgsqlCommand(sql, conn, tx)) await cmd.ExecuteNonQueryAsync(ct);
            await tx.CommitAsync(ct);
            return true;
        }, ct);
        await signals.PublishAsync(PlatformSignals.Topics.Access, projectId, ct); // other instances read the grants again
        var fresh = await functions.ReloadAsync(projectId);
        return fresh.Functions.TryGetValue(name, out var now) ? Settings(now) : null;
    }

    /// <summary>The grants for one function name (all its overloads), as the owner runs them.</summary>
    public static string GenerateSql(string projectId, IEnumerable<(string Schema, string Name, string IdentityArguments)> overloads,
        FunctionAccessSettings s)
    {
        var anon = SqlText.Ident(ProjectNaming.AnonRole(projectId));
        var user = SqlText.Ident(ProjectNaming.UserRole(projectId));
        var admin = SqlText.Ident(ProjectNaming.UserAdminRole(projectId));
        var sql = new System.Text.StringBuilder();
        foreach (var (schema, name, args) in overloads)
        {
            // The argument list is PostgreSQL's own text (pg_get_function_identity_arguments quotes names and types).
            var f = $"{SqlText.Qualified(schema, name)}({args})";
            sql.Append($"REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC, {anon}, {user}, {admin};\n");
            if (s.anon_execute) sql.Append($"GRANT EXECUTE ON FUNCTION {f} TO {anon};\n");
            if (s.auth_execute) sql.Append($"GRANT EXECUTE ON FUNCTION {f} TO {user}, {admin};\n");
        }
        return sql.ToString();
    }

    /// <summary>
    /// Start-up step for projects made before the secure default: every project whose schema holds a routine PUBLIC may
    /// execute, or whose owner's default privileges still give PUBLIC EXECUTE, has its catalog loaded — which revokes
    /// both as the project's owner. Found with one catalog query per server on the platform's login (no project code runs).
    /// Returns the projects secured.
    /// </summary>
    public async Task<IReadOnlyList<string>> SecureExistingProjectsAsync(CancellationToken ct = default)
    {
        var ids = new List<string>();
        foreach (var server in servers.All)
        {
            await using var cmd = server.DataSource.CreateCommand("""
            SELECT p."Id" FROM unnest($1::text[]) AS p("Id")
            JOIN pg_namespace n ON n.nspname = 'proj_' || p."Id"
            WHERE EXISTS (SELECT 1 FROM pg_proc f WHERE f.pronamespace = n.oid AND f.prokind IN ('f', 'p')
                            AND EXISTS (SELECT 1 FROM aclexplode(coalesce(f.proacl, acldefault('f', f.proowner))) e
                                        WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE'))
               OR NOT EXISTS (SELECT 1 FROM pg_default_acl d WHERE d.defaclrole = n.nspowner AND d.defaclnamespace = 0 AND d.defaclobjtype = 'f'
                                AND NOT EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) e WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE'))
               OR EXISTS (SELECT 1 FROM pg_default_acl d WHERE d.defaclrole = n.nspowner AND d.defaclnamespace = n.oid AND d.defaclobjtype = 'f'
                            AND EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) e WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE'))
            """);
            cmd.Parameters.Add(new NpgsqlParameter { Value = await servers.ProjectsOnAsync(server, ct) });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) ids.Add(r.GetString(0));
        }
        var secured = new List<string>();
        foreach (var id in ids)
        {
            try
            {
                var snapshot = await functions.ReloadAsync(id);
                if (snapshot.Functions.Values.SelectMany(f => f).All(f => !f.PublicExecute)) secured.Add(id);
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                log.LogWarning("Could not secure the functions of project {Project}: {Message}", id, e.Message);
            }
        }
        return secured;
    }

    private static FunctionAccessSettings Settings(IReadOnlyList<FunctionInfo> overloads) => new(
        overloads.All(f => f.ExecutableBy.Contains(RestRole.Anon)),
        overloads.All(f => f.ExecutableBy.Contains(RestRole.User) && f.ExecutableBy.Contains(RestRole.UserAdmin)));

    private static FunctionSummary Summarize(string name, IReadOnlyList<FunctionInfo> overloads)
    {
        var s = Settings(overloads);
        var returns = string.Join(" | ", overloads.Select(f => (f.ReturnsSet ? "setof " : "") + f.ReturnType).Distinct());
        var volatility = string.Join(" | ", overloads.Select(f => f.VolatilityName).Distinct());
        return new FunctionSummary(name, overloads.Select(f => f.Signature).ToList(), returns, volatility,
            overloads.Any(f => f.SecurityDefiner), s.anon_execute, s.auth_execute);
    }
}
