// The export API's query (TableExport) and the statement COPY runs for it (RestSql.ForCopy): the Data tab's address for
// its filter and order reads back as the same filter, and no value is ever written into the SQL text.
using System.Text.Json;
using DbStudio.Core.Catalog;
using DbStudio.Core.Panel;
using DbStudio.Core.Rest;

namespace DbStudio.Tests.Unit;

public class TableExportTests
{
    private static readonly TableInfo People = new()
    {
        Schema = "proj_t", Name = "my people", Oid = 1, Kind = 'r',
        Columns =
        [
            new ColumnInfo("id", "integer", 23, true, null, 1, false),
            new ColumnInfo("na\"me", "text", 25, false, null, null, false),
            new ColumnInfo("tags", "text[]", 1009, false, null, null, false),
            new ColumnInfo("meta", "jsonb", 3802, false, null, null, false),
        ],
    };

    private static IEnumerable<KeyValuePair<string, string>> QueryOf(string url) =>
        new Uri("http://x" + url).Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
            .Select(kv => new KeyValuePair<string, string>(Uri.UnescapeDataString(kv[0]), Uri.UnescapeDataString(kv[1])));

    [Fact]
    public void The_data_tabs_export_address_reads_back_as_its_filter_and_order()
    {
        var filter = new DataFilter(
        [
            new("na\"me", "contains", "50% off, (really) \"*\""),
            new("id", "in", "(1,2,3)"),
            new("tags", "is.null", null),
        ], Any: true);
        var url = TableExport.Url("k3x9", People, filter, "na\"me", descending: true);
        Assert.StartsWith("/api/projects/k3x9/tables/my%20people/export?where=", url);
        var req = TableExport.Request(People.Name, QueryOf(url));
        Assert.Equal(Describe(filter.ToFilter()), Describe(Assert.Single(req.Filters)));
        Assert.Contains("Ilike.%50\\% off, (really) \"*\"%", Describe(req.Filters[0])); // contains: its text as it is
        var order = Assert.Single(req.Order);
        Assert.Equal(("na\"me", true), (order.Column, order.Descending));

        // No column chosen, descending: the primary key, descending; nothing chosen: no query at all (every row, by key).
        var byKey = Assert.Single(TableExport.Request(People.Name, QueryOf(TableExport.Url("k3x9", People, null, null, true))).Order);
        Assert.Equal(("id", true), (byKey.Column, byKey.Descending));
        Assert.Equal("/api/projects/k3x9/tables/my%20people/export", TableExport.Url("k3x9", People));
    }

    private static string Describe(Filter f) => f switch
    {
        LogicFilter g => $"{(g.Negated ? "not." : "")}{(g.IsOr ? "or" : "and")}({string.Join(",", g.Children.Select(Describe))})",
        ColumnFilter c => $"{(c.Negated ? "not." : "")}{c.Column}{string.Concat(c.Path)}.{c.Op}.{c.Value}[{string.Join("|", c.Values ?? [])}]",
        _ => "?",
    };

    [Fact]
    public void A_where_that_is_not_column_operator_value_is_refused_with_a_400()
    {
        var e = Assert.Throws<RestException>(() => TableExport.Request("t", [new("where", "id-is-one")]));
        Assert.Equal(400, e.Status);
        Assert.Contains("column.operator.value", e.Error.Message);
        Assert.Equal(400, Assert.Throws<RestException>(() => TableExport.Request("t", [new("id", "about.1")])).Status);
    }

    [Fact]
    public void Copy_statements_carry_no_value_in_their_text_only_references_to_the_arguments()
    {
        const string hostile = "x'); drop table t; --";
        var req = TableExport.Request(People.Name, [
            new("na\"me", "eq." + hostile), new("id", "in.(1,2)"), new("meta->a->>b", "eq." + hostile), new("meta->0", "is.null"),
            new("tags", "cs.{a}"), new("na\"me", "fts(english).cat"), new("limit", "5"), new("offset", "2"),
        ]);
        var q = RestSql.ForCopy(req, People);
        Assert.DoesNotContain("drop table", q.Select);
        Assert.DoesNotContain("$1", q.Select);
        Assert.Contains("ORDER BY pgrst_t.\"id\" ASC", q.Select); // by primary key unless asked
        Assert.Contains("LIMIT (SELECT (pg_catalog.current_setting('dbstudio.copy_args')::jsonb ->> ", q.Select);
        var args = JsonSerializer.Deserialize<JsonElement>(q.Arguments);
        Assert.Equal(hostile, args[0].GetString());
        Assert.Equal(["1", "2"], args[1].EnumerateArray().Select(v => v.GetString()));
        Assert.Contains(args.EnumerateArray(), v => v.ValueKind == JsonValueKind.Number && v.GetInt32() == 0); // meta->0: an array index
        Assert.Equal("SELECT pg_catalog.set_config('dbstudio.copy_args', $1, true)", q.SetArguments);
    }
}
