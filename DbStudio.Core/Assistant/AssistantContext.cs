// What the assistant (and any outside AI building the project's app) is told about a project: tables, columns, types,
// keys, relations, each table's access settings in words, the endpoints and the <sql> protocol. Never a secret: no
// DB_API_KEY, owner password or Connection URL, and no end user's data; the ANON key only as the placeholder ANON_KEY.
// The catalog is read on the project's own logins (SchemaCache; foreign keys through RestConnections.AsOwnerAsync).
using System.Text;
using DbStudio.Core.Access;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using Npgsql;

namespace DbStudio.Core.Assistant;

public sealed record ForeignKey(IReadOnlyList<string> Columns, string RefSchema, string RefTable, IReadOnlyList<string> RefColumns);
public sealed record TableFacts(TableInfo Table, AccessSettings? Access, IReadOnlyList<ForeignKey> ForeignKeys);

/// <summary>A project as the assistant sees it. RestUrl is the public REST base URL (…/db/{id}/rest).</summary>
public sealed record ProjectFacts(string ProjectId, string RestUrl, IReadOnlyList<TableFacts> Tables)
{
    public string Schema => ProjectNaming.Schema(ProjectId);
    public string AuthUrl => RestUrl[..RestUrl.LastIndexOf('/')] + "/auth";
}

public sealed class AssistantContext(SchemaCache schemas, AccessPolicies access, RestConnections connections)
{
    /// <summary>The placeholder that stands for the project's ANON key wherever the context shows one.</summary>
    public const string AnonKeyPlaceholder = "ANON_KEY";

    /// <summary>The 13 column types the panel offers (Schema tab); others work too.</summary>
    public static IReadOnlyList<string> SupportedTypes => Schema.SchemaEditor.Types;

    public async Task<ProjectFacts> FactsAsync(string projectId, string restUrl, CancellationToken ct = default)
    {
        var snapshot = await schemas.GetAsync(projectId, ct);
        var fks = await ForeignKeysAsync(projectId, ct);
        var tables = new List<TableFacts>();
        foreach (var t in snapshot.Tables.Values.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            var settings = t.IsTable ? await access.EnsureAsync(projectId, t, ct) : null;
            tables.Add(new TableFacts(t, settings, fks.GetValueOrDefault(t.Name) ?? []));
        }
        return new ProjectFacts(projectId, restUrl.TrimEnd('/'), tables);
    }

    private const string ForeignKeySql = """
        SELECT cl.relname,
               (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),
               rn.nspname, rcl.relname,
               (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n)
        FROM pg_constraint con
        JOIN pg_class cl ON cl.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace
        JOIN pg_class rcl ON rcl.oid = con.confrelid
        JOIN pg_namespace rn ON rn.oid = rcl.relnamespace
        WHERE con.contype = 'f' AND n.nspname = $1
        ORDER BY cl.relname, con.conname
        """;

    /// <summary>Foreign keys by table name, read from the catalog on the project's own login (rest_owner, acting as the owner).</summary>
    private async Task<Dictionary<string, List<ForeignKey>>> ForeignKeysAsync(string projectId, CancellationToken ct) =>
        await connections.AsOwnerAsync(projectId, async conn =>
        {
            var result = new Dictionary<string, List<ForeignKey>>();
            await using var cmd = new NpgsqlCommand(ForeignKeySql, conn);
            cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                var table = r.GetString(0);
                if (!result.TryGetValue(table, out var list)) result[table] = list = [];
                list.Add(new ForeignKey(r.GetFieldValue<string[]>(1), r.GetString(2), r.GetString(3), r.GetFieldValue<string[]>(4)));
            }
            return result;
        }, ct);

    /// <summary>A table's access settings in words, one sentence per line.</summary>
    public static IEnumerable<string> AccessInWords(TableFacts t)
    {
        if (t.Access is not { } s)
        {
            yield return "A view: only the DB_API_KEY (server side) reaches it over REST.";
            yield break;
        }
        var col = s.user_id_col;
        yield return s.anon_select ? "Anyone with the ANON key can read every row." : "Anonymous visitors (ANON key alone) cannot read it.";
        yield return s.anon_insert ? "Anyone with the ANON key can insert rows." : "Anonymous visitors cannot insert.";
        if (s.auth_insert)
            yield return col is null ? "Signed-in end users can insert rows."
                : $"Signed-in end users can insert rows; `{col}` is filled with their id (naming someone else is refused).";
        else yield return "Signed-in end users cannot insert.";
        var own = new List<string>();
        if (s.auth_select_own) own.Add("read");
        if (s.auth_update_own) own.Add("update");
        if (s.auth_delete_own) own.Add("delete");
        if (own.Count > 0)
            yield return col is null
                ? $"Own-row rules ({string.Join(", ", own)}) are on but no owner column is set, so signed-in users have no own rows."
                : $"Signed-in end users can {string.Join(", ", own)} their own rows (where `{col}` = their user id).";
        else yield return "Signed-in end users have no own-row rights.";
        if (s.anon_select) yield return "Signed-in end users can also read every row (public read).";
        yield return "The DB_API_KEY (server side only) and the SQL console bypass these rules.";
    }

    private static string Column(ColumnInfo c, TableFacts t)
    {
        var sb = new StringBuilder($"`{c.Name}` {c.Type}");
        if (c.IsPrimaryKey) sb.Append(" primary key");
        if (c.NotNull && !c.IsPrimaryKey) sb.Append(" not null");
        if (c.Default is { } d) sb.Append(" default ").Append(d);
        if (c.Generated) sb.Append(" generated");
        foreach (var fk in t.ForeignKeys.Where(f => f.Columns.Count == 1 && f.Columns[0] == c.Name))
            sb.Append($" → {RefName(fk, t)}({fk.RefColumns[0]})");
        return sb.ToString();
    }

    private static string RefName(ForeignKey fk, TableFacts t) => fk.RefSchema == t.Table.Schema ? fk.RefTable : $"{fk.RefSchema}.{fk.RefTable}";

    /// <summary>One table in full: columns, keys, relations and access in words.</summary>
    private static string TableInFull(TableFacts t)
    {
        var sb = new StringBuilder();
        sb.Append($"### {t.Table.Name}{(t.Table.IsTable ? "" : " (view)")}\n");
        foreach (var c in t.Table.Columns) sb.Append("- ").Append(Column(c, t)).Append('\n');
        foreach (var fk in t.ForeignKeys.Where(f => f.Columns.Count > 1))
            sb.Append($"- foreign key ({string.Join(", ", fk.Columns)}) → {RefName(fk, t)}({string.Join(", ", fk.RefColumns)})\n");
        sb.Append("Access: ").Append(string.Join(" ", AccessInWords(t))).Append('\n');
        return sb.ToString();
    }

    /// <summary>One table on one line, for schemas past the size budget.</summary>
    private static string TableInBrief(TableFacts t) =>
        $"- {t.Table.Name}({string.Join(", ", t.Table.Columns.Select(c => c.Name + " " + c.Type + (c.IsPrimaryKey ? " pk" : "")))})" +
        (t.Access is { } s ? $" access: anon read {(s.anon_select ? "on" : "off")}, anon insert {(s.anon_insert ? "on" : "off")}, " +
            $"own rows by {s.user_id_col ?? "none"}" : " (view)") + "\n";

    /// <summary>
    /// The tables described within <paramref name="budget"/> characters: in full while they fit, then one line each, then
    /// only their names; what was left out is said.
    /// </summary>
    public static string Tables(ProjectFacts facts, int budget)
    {
        if (facts.Tables.Count == 0) return "The project has no tables yet.\n";
        var sb = new StringBuilder();
        var brief = false;
        for (var i = 0; i < facts.Tables.Count; i++)
        {
            var t = facts.Tables[i];
            var full = brief ? null : TableInFull(t);
            if (full is not null && sb.Length + full.Length <= budget) { sb.Append(full).Append('\n'); continue; }
            if (!brief) { brief = true; sb.Append("(The schema is long: the remaining tables in brief.)\n"); }
            var line = TableInBrief(t);
            if (sb.Length + line.Length <= budget) { sb.Append(line); continue; }
            var rest = facts.Tables.Skip(i).Select(x => x.Table.Name).ToList();
            var names = new StringBuilder($"- {rest.Count} more tables, named: ");
            foreach (var n in rest)
            {
                if (sb.Length + names.Length + n.Length + 2 > budget + 200) { names.Append('…'); break; }
                names.Append(n).Append(", ");
            }
            sb.Append(names.ToString().TrimEnd(',', ' ')).Append(" (ask for details of any of them)\n");
            break;
        }
        return sb.ToString();
    }

    private static string StreamUrl(ProjectFacts f) => $"{f.RestUrl}/{{table}}/stream?apikey={AnonKeyPlaceholder}[&access_token=…][&last_event_id=…][&filters]";

    /// <summary>The system message of the panel's assistant.</summary>
    public static string SystemPrompt(ProjectFacts facts, int budget) => $$"""
        You are the database assistant in DbStudio's DB panel for one project. It is PostgreSQL.
        Queries run as the project's owner role with search_path = {{facts.Schema}}: write table names unqualified; other
        schemas are not reachable (PostgreSQL refuses them). Every table gets real row-level security from its access settings.

        ## Protocol
        - Put each SQL script you want run between <sql> and </sql> (no Markdown fence around it). The person sees each block
          and runs it: reads may run at once if they allowed it, writes and DDL need a click, and DROP, TRUNCATE, ALTER … DROP
          and UPDATE/DELETE without WHERE need a typed confirmation. Blocks run in order and stop at the first error.
        - To change a table's access settings, add a block <access table="name">{"anon_select": true}</access> with any of
          the keys anon_select, anon_insert, auth_insert, auth_select_own, auth_update_own, auth_delete_own (booleans) and
          user_id_col (the uuid/text column holding the end user's id, or null). Keys left out keep their value. Do not write
          CREATE POLICY or GRANT for this: the platform generates them from these settings.
        - Keep answers short; explain what each block does.

        ## Column types offered in the panel
        {{string.Join(", ", SupportedTypes)}} (others work too).

        ## Endpoints for the project's app
        - REST (PostgREST dialect): {{facts.RestUrl}}/{table} with header apikey: {{AnonKeyPlaceholder}} (plus Authorization: Bearer <session token> for a signed-in end user).
        - End-user auth: {{facts.AuthUrl}}/signup and /login with {email, password} → {access_token, refresh_token, user}.
        - Live rows (Server-Sent Events): {{StreamUrl(facts)}}; events insert, update, delete, reset, revoked; resume with last_event_id.
        - {{AnonKeyPlaceholder}} stands for the project's ANON key; you never see any key or password.

        ## Tables in schema {{facts.Schema}}
        {{Tables(facts, budget)}}
        """;
}
