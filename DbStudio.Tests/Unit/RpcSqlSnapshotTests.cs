// The RPC planner's exact SQL text and parameters for each kind of call (issue 13), as RestSqlSnapshotTests does for
// tables: a change to what a call sends PostgreSQL shows up as a diff of Unit/Snapshots/RpcSql.txt. After a deliberate
// change, regenerate it with DBSTUDIO_UPDATE_SNAPSHOTS=1 dotnet test --filter RpcSqlSnapshotTests and read the diff.
using System.Text;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;

namespace DbStudio.Tests.Unit;

public class RpcSqlSnapshotTests
{
    private static FunctionInfo Fn(string name, FunctionParam[] ps, string returnType, FunctionReturn returns = FunctionReturn.Scalar,
        bool set = false, char volatility = 'v', ColumnInfo[]? columns = null) => new()
    {
        Schema = "proj_snap", Name = name, Oid = 1, IdentityArguments = "", Params = ps, ReturnType = returnType, ReturnsSet = set,
        Returns = returns, Columns = columns ?? [], Volatility = volatility, SecurityDefiner = false,
        ExecutableBy = new HashSet<RestRole> { RestRole.Owner },
    };

    private static readonly ColumnInfo[] Item =
        [new("id", "integer", PgType.Int4, false, null, null, false), new("name", "text", PgType.Text, false, null, null, false)];

    private static readonly FunctionInfo Add = Fn("add", [new("a", "integer", true, false), new("b", "integer", false, false)], "integer", volatility: 'i');
    private static readonly FunctionInfo Touch = Fn("touch", [], "void", FunctionReturn.Void);
    private static readonly FunctionInfo Raw = Fn("raw", [new("", "json", true, false)], "json");
    private static readonly FunctionInfo Doc = Fn("store", [new("doc", "jsonb", true, false)], "integer");
    private static readonly FunctionInfo Numbers = Fn("numbers", [new("upto", "integer", true, false)], "integer", set: true, volatility: 's');
    private static readonly FunctionInfo Items = Fn("items", [new("ids", "integer[]", false, false)], "record", FunctionReturn.Rows, set: true,
        volatility: 's', columns: Item);
    private static readonly FunctionInfo First = Fn("first_item", [], "record", FunctionReturn.Rows, volatility: 's', columns: Item);
    private static readonly FunctionInfo Sum = Fn("sum_all", [new("xs", "integer[]", true, true)], "integer", volatility: 'i');

    /// <summary>(name, function, verb, query string, Prefer, Range, Accept, body).</summary>
    public static readonly (string Name, FunctionInfo Fn, RestVerb Verb, string Query, string[] Prefer, string? Range, string? Accept, string? Body)[] Cases =
    [
        ("post, named arguments, a default left out", Add, RestVerb.Post, "", [], null, null, """{"a":1}"""),
        ("get, arguments from the query string", Add, RestVerb.Get, "a=1&b=2", [], null, null, null),
        ("void", Touch, RestVerb.Post, "", [], null, null, null),
        ("one unnamed json parameter takes the body", Raw, RestVerb.Post, "", [], null, null, """{"any":[1,2]}"""),
        ("params=single-object", Doc, RestVerb.Post, "", ["params=single-object"], null, null, """{"k":"v"}"""),
        ("setof scalar, paged and counted", Numbers, RestVerb.Get, "upto=10&limit=3&offset=2", ["count=exact"], null, null, null),
        ("setof rows, select, filter, order, Range", Items, RestVerb.Get, "select=name&id=gt.1&order=name.desc", [], "0-9", null, null),
        ("array argument repeated in the query string", Items, RestVerb.Get, "ids=1&ids=2", [], null, null, null),
        ("one row, not a set", First, RestVerb.Get, "", [], null, null, null),
        ("setof rows as one object", Items, RestVerb.Post, "id=eq.1", [], null, "application/vnd.pgrst.object+json", "{}"),
        ("variadic", Sum, RestVerb.Post, "", [], null, null, """{"xs":[1,2,3]}"""),
    ];

    private static string Render()
    {
        var sb = new StringBuilder();
        foreach (var (name, fn, verb, query, prefer, range, accept, body) in Cases)
        {
            var pairs = query.Length == 0 ? [] : query.Split('&').Select(p => p.Split('=', 2))
                .Select(kv => new KeyValuePair<string, string>(kv[0], Uri.UnescapeDataString(kv[1])));
            var plan = RpcSql.Build(RpcParser.Parse(verb, fn.Name, pairs, prefer, range, accept, body), fn, 1000);
            sb.Append("## ").Append(name).Append('\n');
            sb.Append("write: ").Append(plan.IsWrite ? "yes" : "no").Append('\n');
            sb.Append("sql: ").Append(plan.Sql).Append('\n');
            foreach (var (p, i) in plan.Parameters.Select((p, i) => (p, i + 1)))
                sb.Append($"${i}: ").Append(p.Value is Array a ? "[" + string.Join(",", a.Cast<object>()) + "]" : p.Value).Append('\n');
            sb.Append('\n');
        }
        return sb.ToString();
    }

    [Fact]
    public void The_rpc_planner_writes_the_same_sql_and_parameters_for_each_kind_of_call()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DbStudio.sln"))) dir = dir.Parent;
        var file = Path.Combine(dir!.FullName, "DbStudio.Tests", "Unit", "Snapshots", "RpcSql.txt");
        var actual = Render();
        if (Environment.GetEnvironmentVariable("DBSTUDIO_UPDATE_SNAPSHOTS") == "1") File.WriteAllText(file, actual);
        Assert.True(File.Exists(file), $"{file} is missing: generate it with DBSTUDIO_UPDATE_SNAPSHOTS=1 and review it");
        Assert.Equal(File.ReadAllText(file), actual);
    }
}
