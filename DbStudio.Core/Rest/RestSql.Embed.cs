// Stage 3, embedded resources: finds the relationship an embed names (PostgREST's findRel: by table, foreign key
// constraint or column, narrowed by a hint; PGRST200 when there is none, PGRST201 when several fit) and writes its
// LATERAL subquery — to-one as row_to_json of the one row (or null), to-many as json_agg of the rows ('[]' when none),
// many-to-many through the junction table. The embedded tables are read by the same statement on the caller's login,
// so their own privileges and row policies decide what appears.
using System.Text;
using DbStudio.Core.Catalog;
using DbStudio.Core.Sql;
using NpgsqlTypes;

namespace DbStudio.Core.Rest;

public sealed partial class RestSql
{
    /// <summary>Appends one JOIN LATERAL per embed to <paramref name="joins"/> and returns the select-list outputs.</summary>
    private List<string> EmbedJoins(IReadOnlyList<Embed> embeds, Scope parent, StringBuilder joins)
    {
        var outputs = new List<string>();
        foreach (var e in embeds)
        {
            var rel = FindRelationship(parent.Table, e);
            var target = _schema!.Tables[rel.Target];
            _embedded.Add(target.Name);
            if (rel.Junction is { } junction) _embedded.Add(junction.Table);
            var n = ++_aliases;
            var scope = new Scope(target, "pgrst_e" + n);
            var lateral = "pgrst_a" + n;
            if (e.Spread && !rel.ToOne)
                throw RestException.BadRequest($"A spread of '{RestParser.Trim(e.Name)}' is not possible",
                    $"'{parent.Table.Name}' and '{target.Name}' do not form a many-to-one or one-to-one relationship",
                    "Spread only embeds that give one row, e.g. select=id,...author(name)");
            var sub = Subquery(e, rel, parent, scope, limit: !rel.ToOne);
            var join = e.Inner ? " INNER JOIN LATERAL (" : " LEFT JOIN LATERAL (";
            var empty = e.Select.Count == 0 && e.Embeds.Count == 0;
            if (rel.ToOne)
            {
                joins.Append(join).Append(sub).Append(") AS ").Append(lateral).Append(" ON TRUE");
                if (e.Spread)
                    outputs.AddRange(OutputNames(e.Select, e.Embeds, target).Select(name => $"{lateral}.{SqlText.Ident(name)} AS {SqlText.Ident(name)}"));
                else if (!empty) outputs.Add($"row_to_json({lateral}.*) AS {SqlText.Ident(e.Name)}");
            }
            else
            {
                joins.Append(join).Append("SELECT json_agg(").Append(lateral).Append(") AS ").Append(lateral).Append(" FROM (")
                    .Append(sub).Append(") AS ").Append(lateral).Append(") AS ").Append(lateral)
                    .Append(e.Inner ? $" ON {lateral}.{lateral} IS NOT NULL" : " ON TRUE");
                if (!empty) outputs.Add($"COALESCE({lateral}.{lateral}, '[]') AS {SqlText.Ident(e.Name)}");
            }
        }
        return outputs;
    }

    /// <summary>
    /// SELECT of the embedded rows of one parent row: the embed's columns and its own embeds, the relationship's join
    /// condition, its filters, and for to-many its order, limit (at most the row cap) and offset.
    /// </summary>
    private string Subquery(Embed e, Relationship rel, Scope parent, Scope scope, bool limit)
    {
        var conditions = JoinConditions(rel, parent, scope, out var junctionJoin);
        var where = Where(e.Filters, scope);
        if (where.Length > 0) conditions.Add(where);
        var select = SelectList(e.Select, scope);
        var joins = new StringBuilder();
        var outputs = EmbedJoins(e.Embeds, scope, joins);
        var list = string.Join(", ", new[] { select }.Where(x => x.Length > 0).Concat(outputs));
        var sb = new StringBuilder("SELECT ").Append(list).Append(list.Length > 0 ? " FROM " : "FROM ")
            .Append(SqlText.Qualified(scope.Table.Schema, scope.Table.Name)).Append(" AS ").Append(scope.Alias)
            .Append(junctionJoin).Append(joins);
        if (conditions.Count > 0) sb.Append(" WHERE ").AppendJoin(" AND ", conditions);
        if (limit)
        {
            sb.Append(OrderBy(e.Order, scope));
            sb.Append(" LIMIT ").Append(Param(Math.Min(e.Limit ?? _maxRows, _maxRows), NpgsqlDbType.Bigint));
            if (e.Offset > 0) sb.Append(" OFFSET ").Append(Param(e.Offset, NpgsqlDbType.Bigint));
        }
        return sb.ToString();
    }

    /// <summary>`target.col = parent.col` for each column pair; many-to-many joins the junction in and compares through it.</summary>
    private static List<string> JoinConditions(Relationship rel, Scope parent, Scope scope, out string junctionJoin)
    {
        junctionJoin = "";
        if (rel.Junction is not { } j)
            return rel.Columns.Select(p => $"{scope.Alias}.{SqlText.Ident(p.TargetColumn)} = {parent.Alias}.{SqlText.Ident(p.Column)}").ToList();
        var ja = scope.Alias.Replace("pgrst_e", "pgrst_j");
        junctionJoin = $" JOIN {SqlText.Qualified(scope.Table.Schema, j.Table)} AS {ja} ON "
                       + string.Join(" AND ", j.TargetColumns.Select(p => $"{ja}.{SqlText.Ident(p.Junction)} = {scope.Alias}.{SqlText.Ident(p.Column)}"));
        return j.SourceColumns.Select(p => $"{ja}.{SqlText.Ident(p.Junction)} = {parent.Alias}.{SqlText.Ident(p.Column)}").ToList();
    }

    /// <summary>For the count: `EXISTS (SELECT 1 FROM target WHERE join AND filters AND nested inner embeds)` per !inner embed.</summary>
    private List<string> InnerExists(IReadOnlyList<Embed> embeds, Scope parent)
    {
        var result = new List<string>();
        foreach (var e in embeds.Where(e => e.Inner))
        {
            var rel = FindRelationship(parent.Table, e);
            var scope = new Scope(_schema!.Tables[rel.Target], "pgrst_c" + ++_aliases);
            var conditions = JoinConditions(rel, parent, scope, out var junctionJoin);
            var where = Where(e.Filters, scope);
            if (where.Length > 0) conditions.Add(where);
            conditions.AddRange(InnerExists(e.Embeds, scope));
            result.Add($"EXISTS (SELECT 1 FROM {SqlText.Qualified(scope.Table.Schema, scope.Table.Name)} AS {scope.Alias}{junctionJoin}"
                       + (conditions.Count > 0 ? " WHERE " + string.Join(" AND ", conditions) : "") + ")");
        }
        return result;
    }

    /// <summary>The parent's columns an embed joins on (for RETURNING of writes).</summary>
    private IEnumerable<string> JoinColumns(Embed e, TableInfo parent)
    {
        var rel = FindRelationship(parent, e);
        return rel.Junction is { } j ? j.SourceColumns.Select(p => p.Column) : rel.Columns.Select(p => p.Column);
    }

    private TableInfo FindTable(Embed e, TableInfo parent) => _schema!.Tables[FindRelationship(parent, e).Target];

    /// <summary>PostgREST's findRel: the one relationship from <paramref name="origin"/> that the embed names.</summary>
    private Relationship FindRelationship(TableInfo origin, Embed e)
    {
        if (_schema is null) throw RestException.BadRequest("Embedded resources are not supported here", $"select item \"{RestParser.Trim(e.Relation)}\"");
        var target = e.Relation;
        var hint = e.Hint;
        static bool SingleCol(Relationship r, string name) => r.Junction is null && r.Columns.Count == 1 && r.Columns[0].Column == name;
        static bool SingleRefCol(Relationship r, string name) => r.Junction is null && r.Columns.Count == 1 && r.Columns[0].TargetColumn == name;
        static bool Constraint(Relationship r, string name) => r.Junction is null && r.Constraint == name;
        var found = _schema.RelationshipsFrom(origin.Name).Where(r => _schema.Tables.ContainsKey(r.Target)).Where(r =>
        {
            if (r.IsSelf)
                return hint is null
                    ? target == r.Target && r.Cardinality == Cardinality.OneToMany || SingleCol(r, target) && r.Cardinality == Cardinality.ManyToOne
                    : target == r.Target && r.Cardinality == Cardinality.OneToMany && SingleRefCol(r, hint);
            if (hint is null) return target == r.Target || Constraint(r, target) || SingleCol(r, target);
            return target == r.Target
                   && (Constraint(r, hint) || SingleCol(r, hint) || SingleRefCol(r, hint) || r.Junction?.Table == hint);
        }).ToList();
        if (found.Count == 1) return found[0];
        if (found.Count == 0)
            throw new RestException(400, "PGRST200",
                $"Could not find a relationship between '{origin.Name}' and '{RestParser.Trim(target)}' in the schema cache",
                $"Searched for a foreign key relationship between '{origin.Name}' and '{RestParser.Trim(target)}'"
                + (hint is null ? "" : $" using the hint '{RestParser.Trim(hint)}'") + $" in the schema '{origin.Schema}', but no matches were found.",
                SuggestTable(origin, target));
        var details = found.Select(r => new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["cardinality"] = r.Cardinality switch
            {
                Cardinality.ManyToOne => "many-to-one", Cardinality.OneToMany => "one-to-many",
                Cardinality.OneToOne => "one-to-one", _ => "many-to-many",
            },
            ["embedding"] = $"{r.Origin} with {r.Target}",
            ["relationship"] = r.Junction is { } j
                ? $"{j.Table} using {j.SourceConstraint}({string.Join(", ", j.SourceColumns.Select(p => p.Junction))}) and {j.TargetConstraint}({string.Join(", ", j.TargetColumns.Select(p => p.Junction))})"
                : $"{r.Constraint} using {r.Origin}({string.Join(", ", r.Columns.Select(p => p.Column))}) and {r.Target}({string.Join(", ", r.Columns.Select(p => p.TargetColumn))})",
        }).ToList();
        throw new RestException(300, "PGRST201", $"Could not embed because more than one relationship was found for '{origin.Name}' and '{RestParser.Trim(target)}'",
            null, $"Try changing '{RestParser.Trim(target)}' to one of the following: "
                  + string.Join(", ", found.Select(r => $"'{r.Target}!{r.Junction?.Table ?? r.Constraint}'"))
                  + ". Find the desired relationship in the 'details' key.")
            { JsonDetails = details };
    }

    /// <summary>"Perhaps you meant 'x' instead of 'y'." for a near miss among the tables related to <paramref name="origin"/>.</summary>
    private string? SuggestTable(TableInfo origin, string target)
    {
        var candidates = _schema!.RelationshipsFrom(origin.Name).Select(r => r.Target).Distinct();
        var best = candidates.Select(c => (c, d: Distance(c, target))).Where(x => x.d > 0 && x.d <= Math.Max(1, target.Length / 3))
            .OrderBy(x => x.d).Select(x => x.c).FirstOrDefault();
        return best is null ? null : $"Perhaps you meant '{best}' instead of '{RestParser.Trim(target)}'.";
    }

    private static int Distance(string a, string b)
    {
        if (Math.Abs(a.Length - b.Length) > 8 || b.Length > 64) return int.MaxValue;
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        for (var j = 1; j <= b.Length; j++)
            d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
