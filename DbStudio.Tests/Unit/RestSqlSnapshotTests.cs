// The planner's exact SQL text and parameters for each grammar feature (issue 13): a change to what REST sends
// PostgreSQL shows up here as a diff of Unit/Snapshots/RestSql.txt. After a deliberate change, regenerate it with
// DBSTUDIO_UPDATE_SNAPSHOTS=1 dotnet test --filter RestSqlSnapshotTests, and read the diff before committing it.
using System.Text;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Rest;

namespace DbStudio.Tests.Unit;

public class RestSqlSnapshotTests
{
    private static readonly TableInfo Todo = new()
    {
        Schema = "proj_snap", Name = "todo", Oid = 16500, Kind = 'r',
        Columns =
        [
            new ColumnInfo("id", "integer", 23, true, "nextval('todo_id_seq'::regclass)", 1, false),
            new ColumnInfo("title", "text", 25, true, null, null, false),
            new ColumnInfo("done", "boolean", 16, false, "false", null, false),
            new ColumnInfo("user_id", "uuid", 2950, false, null, null, false),
            new ColumnInfo("tags", "text[]", 1009, false, null, null, false),
            new ColumnInfo("meta", "jsonb", 3802, false, null, null, false),
        ],
    };

    /// <summary>(name, verb, query string, Prefer, body): one case per grammar feature.</summary>
    public static readonly (string Name, RestVerb Verb, string Query, string[] Prefer, string? Body)[] Cases =
    [
        ("select star", RestVerb.Get, "", [], null),
        ("select columns, alias, cast", RestVerb.Get, "select=id,name:title,done::text", [], null),
        ("eq neq gt gte lt lte", RestVerb.Get, "id=gt.1&id=lte.9&title=neq.x&id=gte.2&id=lt.8&done=eq.true", [], null),
        ("like ilike match imatch", RestVerb.Get, "title=like.a*&title=ilike.*B&title=match.^a&title=imatch.b$", [], null),
        ("in and is", RestVerb.Get, "id=in.(1,2,3)&done=is.null&user_id=not.is.null", [], null),
        ("cs cd ov", RestVerb.Get, "tags=cs.{a,b}&tags=cd.{a,b,c}&tags=ov.{x}", [], null),
        ("or and not", RestVerb.Get, "or=(id.eq.1,and(done.is.true,title.like.x*))&not.and=(id.gt.5,id.lt.7)", [], null),
        ("order limit offset", RestVerb.Get, "order=done.desc.nullslast,id.asc&limit=10&offset=20", [], null),
        ("count exact", RestVerb.Get, "limit=5", ["count=exact"], null),
        ("count estimated", RestVerb.Get, "limit=5", ["count=estimated"], null),
        ("head", RestVerb.Head, "done=is.false", ["count=exact"], null),
        ("insert one, minimal", RestVerb.Post, "", ["return=minimal"], """{"title":"a"}"""),
        ("insert many, representation", RestVerb.Post, "", ["return=representation"], """[{"title":"a"},{"title":"b","done":true}]"""),
        ("insert, missing=default", RestVerb.Post, "", ["missing=default", "return=representation"], """[{"title":"a"},{"title":"b","done":true}]"""),
        ("upsert merge", RestVerb.Post, "on_conflict=id", ["resolution=merge-duplicates"], """{"id":1,"title":"a"}"""),
        ("upsert ignore", RestVerb.Post, "on_conflict=id", ["resolution=ignore-duplicates"], """{"id":1,"title":"a"}"""),
        ("update", RestVerb.Patch, "id=eq.1", ["return=representation"], """{"done":true}"""),
        ("delete", RestVerb.Delete, "id=in.(1,2)", [], null),
    ];

    private static string Render()
    {
        var caller = new RestCaller("snap", CallerKind.Admin);
        var sb = new StringBuilder();
        foreach (var (name, verb, query, prefer, body) in Cases)
        {
            var pairs = query.Length == 0 ? [] : query.Split('&').Select(p => p.Split('=', 2))
                .Select(kv => new KeyValuePair<string, string>(kv[0], Uri.UnescapeDataString(kv[1])));
            var req = RestParser.Parse(verb, "todo", pairs, prefer, null, null, body);
            var plan = RestSql.Build(req, Todo, caller, "user_id", 1000);
            sb.Append("## ").Append(name).Append('\n');
            if (plan.CountSql is not null) sb.Append("count: ").Append(plan.CountSql).Append('\n');
            sb.Append("sql: ").Append(plan.Sql).Append('\n');
            foreach (var (p, i) in plan.Parameters.Select((p, i) => (p, i + 1)))
                sb.Append($"${i} {TypeName(p.NpgsqlDbType)}: ").Append(p.Value is Array a ? "[" + string.Join(",", a.Cast<object>()) + "]" : p.Value).Append('\n');
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static string TypeName(NpgsqlTypes.NpgsqlDbType t) =>
        (t & NpgsqlTypes.NpgsqlDbType.Array) != 0 ? (t & ~NpgsqlTypes.NpgsqlDbType.Array) + "[]" : t.ToString();

    [Fact]
    public void The_planner_writes_the_same_sql_and_parameters_for_each_grammar_feature()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DbStudio.sln"))) dir = dir.Parent;
        var file = Path.Combine(dir!.FullName, "DbStudio.Tests", "Unit", "Snapshots", "RestSql.txt");
        var actual = Render();
        if (Environment.GetEnvironmentVariable("DBSTUDIO_UPDATE_SNAPSHOTS") == "1") File.WriteAllText(file, actual);
        Assert.True(File.Exists(file), $"{file} is missing: generate it with DBSTUDIO_UPDATE_SNAPSHOTS=1 and review it");
        Assert.Equal(File.ReadAllText(file), actual);
    }
}
