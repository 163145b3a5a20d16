// The row-level security policies on a table that the Access tab did not make — written by hand in the SQL tab, by the
// assistant or over a direct connection — as PostgreSQL has them (pg_policies: PostgreSQL's own deparsing of USING and
// WITH CHECK), and which of them apply to a role reading the table: PUBLIC's and those of roles it has the privileges of
// (pg_has_role … USAGE, as PostgreSQL itself picks a query's policies). Read on the project owner's login, never the
// platform's (DESIGN §2). "View as" lists them beside what it shows.
using DbStudio.Core.Projects;
using Npgsql;

namespace DbStudio.Core.Access;

/// <summary>A hand-written policy: its name, permissive (OR-ed with the others) or restrictive (AND-ed), its command (ALL,
/// SELECT, …), its roles, and its USING and WITH CHECK expressions as PostgreSQL prints them.</summary>
public sealed record HandWrittenPolicy(string Name, bool Permissive, string Command, IReadOnlyList<string> Roles, string? Using, string? WithCheck);

/// <summary>
/// What decides a role's reads of a table beyond the Access tab: whether row-level security is on (and forced on the
/// table's owner too), and the hand-written policies for reading (SELECT or ALL) that apply to the role.
/// </summary>
public sealed record TableRls(bool Enabled, bool Forced, IReadOnlyList<HandWrittenPolicy> Policies);

public sealed class HandWrittenPolicies(OwnerConnections owners)
{
    /// <summary>The table's row-level security and the hand-written policies that apply to <paramref name="role"/> reading
    /// it; null when the project has no such table.</summary>
    public async Task<TableRls?> ForReadingAsync(string projectId, string table, string role, CancellationToken ct = default)
    {
        if (table.Contains('\0') || role.Contains('\0')) return null;
        await using var owner = await owners.OpenAsync(projectId, ct);
        await using var cmd = new NpgsqlCommand("""
            SELECT c.relrowsecurity, c.relforcerowsecurity, p.policyname::text, p.permissive = 'PERMISSIVE', p.cmd, p.roles::text[],
                   p.qual, p.with_check
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_catalog.pg_policies p ON p.schemaname = n.nspname AND p.tablename = c.relname
                 AND p.cmd IN ('ALL', 'SELECT') AND p.policyname::text <> ALL ($3::text[])
                 AND EXISTS (SELECT 1 FROM unnest(p.roles) r
                             WHERE CASE WHEN r = 'public' THEN true ELSE pg_catalog.pg_has_role($4::name, r, 'USAGE') END)
            WHERE n.nspname = $1 AND c.relname = $2
            ORDER BY p.permissive DESC, p.policyname
            """, owner.Connection);
        cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = table });
        cmd.Parameters.Add(new NpgsqlParameter { Value = AccessPolicies.GeneratedPolicies.ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = role });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        TableRls? rls = null;
        var policies = new List<HandWrittenPolicy>();
        while (await r.ReadAsync(ct))
        {
            rls ??= new TableRls(r.GetBoolean(0), r.GetBoolean(1), policies);
            if (r.IsDBNull(2)) continue;
            policies.Add(new HandWrittenPolicy(r.GetString(2), r.GetBoolean(3), r.GetString(4), r.GetFieldValue<string[]>(5),
                r.IsDBNull(6) ? null : r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7)));
        }
        return rls;
    }
}
