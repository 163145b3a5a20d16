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
        ("json paths in select, filter and order", RestVerb.Get, "select=id,meta->a->>b,n:meta->0,meta->>c::int&meta->>c=eq.x&meta->a=cs.{\"b\":1}&order=meta->>c.desc", [], null),
        ("fts plfts phfts wfts", RestVerb.Get, "title=fts.cat&title=plfts(english).fat%20cat&title=phfts.fat%20cat&title=wfts(simple).cat%20or%20dog", [], null),
        ("quantifiers, ranges, isdistinct", RestVerb.Get, "title=like(any).{a*,b*}&id=eq(all).{1,2}&done=isdistinct.true", [], null),
        ("csv", RestVerb.Get, "select=id,title&order=id", [], null),
        ("insert, headers-only", RestVerb.Post, "", ["return=headers-only"], """{"title":"a"}"""),
    ];

    /// <summary>Embedding: authors 1—n books (two keys: author, editor), books n—n tags through book_tags, books 1—n comments.</summary>
    public static readonly (string Name, string Table, RestVerb Verb, string Query, string[] Prefer, string? Body)[] EmbedCases =
    [
        ("embed many-to-one with alias and hint", "books", RestVerb.Get, "select=title,writer:authors!books_author_id_fkey(name)", [], null),
        ("embed many-to-one by column", "books", RestVerb.Get, "select=title,author_id(name)", [], null),
        ("embed one-to-many with filters, order, limit", "authors", RestVerb.Get,
            "select=name,books!books_author_id_fkey(title,comments(body))&books.order=title.desc&books.limit=2&books.offset=1&books.title=like.A*&books.comments.or=(id.eq.1,id.eq.2)", [], null),
        ("embed many-to-many", "books", RestVerb.Get, "select=title,tags(name)", [], null),
        ("embed !inner with count", "books", RestVerb.Get, "select=title,comments!inner(body)&comments.body=eq.x", ["count=exact"], null),
        ("embed spread", "books", RestVerb.Get, "select=title,...authors!author_id(author:name)", [], null),
        ("delete with order and representation", "books", RestVerb.Delete, "id=gt.1&select=title&order=title.desc", ["return=representation"], null),
        ("embed in a write response", "books", RestVerb.Post, "select=title,authors!author_id(name)", ["return=representation"], """{"title":"t","author_id":1}"""),
    ];

    /// <summary>Features that need a Range or Accept header, a signed-in caller, or a range column.</summary>
    public static readonly (string Name, string Table, RestVerb Verb, string Query, string[] Prefer, string? Body, string? Range, string? Accept,
        CallerKind Caller)[] HeaderCases =
    [
        ("count planned", "todo", RestVerb.Get, "limit=5", ["count=planned"], null, null, null, CallerKind.Admin),
        ("count exact with a filter", "todo", RestVerb.Get, "done=is.false", ["count=estimated"], null, null, null, CallerKind.Admin),
        ("range header", "todo", RestVerb.Get, "order=id", [], null, "10-19", null, CallerKind.Admin),
        ("range header and offset", "todo", RestVerb.Get, "offset=5&limit=100", ["count=exact"], null, "items=0-9", null, CallerKind.Admin),
        ("single object read", "todo", RestVerb.Get, "id=eq.1", [], null, null, "application/vnd.pgrst.object+json", CallerKind.Admin),
        ("single object write", "todo", RestVerb.Post, "", [], """{"title":"a"}""", null, "application/vnd.pgrst.object+json", CallerKind.Admin),
        ("insert with columns=", "todo", RestVerb.Post, "columns=title,done", ["return=representation"],
            """[{"title":"a","done":true,"ignored":1}]""", null, null, CallerKind.Admin),
        ("signed-in insert fills the owner column", "todo", RestVerb.Post, "", [], """{"title":"a"}""", null, null, CallerKind.User),
        ("signed-in update", "todo", RestVerb.Patch, "id=eq.1", [], """{"title":"b"}""", null, null, CallerKind.User),
        ("admin update without a filter", "todo", RestVerb.Patch, "", [], """{"done":false}""", null, null, CallerKind.Admin),
        ("upsert on another column, columns named", "todo", RestVerb.Post, "on_conflict=title&columns=title,done",
            ["resolution=merge-duplicates", "return=representation"], """{"title":"a","done":true}""", null, null, CallerKind.Admin),
        ("range operators", "slots", RestVerb.Get, "during=sl.[1,5)&during=sr.[1,5)&during=nxr.[1,5)&during=nxl.[1,5)&during=adj.[1,5)",
            [], null, null, null, CallerKind.Admin),
        ("nested not, or inside and", "todo", RestVerb.Get, "and=(or(id.eq.1,not.id.eq.2),not.title.is.null)&done=not.is.true&order=title.asc.nullsfirst",
            [], null, null, null, CallerKind.Admin),
        ("embedded filter with not and or", "authors", RestVerb.Get, "select=name,books!books_author_id_fkey(title)&books.title=not.eq.x&books.or=(id.lt.3,id.gt.9)",
            [], null, null, null, CallerKind.Admin),
        ("csv of an embed", "books", RestVerb.Get, "select=title,authors!author_id(name)", [], null, null, "text/csv", CallerKind.Admin),
    ];

    private static TableInfo Table(string name, uint oid, params ColumnInfo[] columns) =>
        new() { Schema = "proj_snap", Name = name, Oid = oid, Kind = 'r', Columns = columns };

    private static ColumnInfo Col(string name, string type, uint oid, int? pk = null) => new(name, type, oid, pk is not null, null, pk, false);

    private static readonly SchemaSnapshot Schema = new(new Dictionary<string, TableInfo>
    {
        ["todo"] = Todo,
        ["authors"] = Table("authors", 16600, Col("id", "integer", 23, 1), Col("name", "text", 25)),
        ["books"] = Table("books", 16601, Col("id", "integer", 23, 1), Col("title", "text", 25), Col("author_id", "integer", 23), Col("editor_id", "integer", 23)),
        ["tags"] = Table("tags", 16602, Col("id", "integer", 23, 1), Col("name", "text", 25)),
        ["book_tags"] = Table("book_tags", 16603, Col("book_id", "integer", 23, 1), Col("tag_id", "integer", 23, 2)),
        ["slots"] = Table("slots", 16605, Col("id", "integer", 23, 1), Col("during", "int4range", 3904)),
        ["comments"] = Table("comments", 16604, Col("id", "integer", 23, 1), Col("book_id", "integer", 23), Col("body", "text", 25)),
    }, 0,
    [
        new ForeignKey("books_author_id_fkey", "books", "authors", ["author_id"], ["id"], false),
        new ForeignKey("books_editor_id_fkey", "books", "authors", ["editor_id"], ["id"], false),
        new ForeignKey("book_tags_book_id_fkey", "book_tags", "books", ["book_id"], ["id"], false),
        new ForeignKey("book_tags_tag_id_fkey", "book_tags", "tags", ["tag_id"], ["id"], false),
        new ForeignKey("comments_book_id_fkey", "comments", "books", ["book_id"], ["id"], false),
    ]);

    private static string Render()
    {
        var sb = new StringBuilder();
        var all = Cases.Select(c => (c.Name, Table: "todo", c.Verb, c.Query, c.Prefer, c.Body, Range: (string?)null,
                Accept: c.Name == "csv" ? "text/csv" : null, Caller: CallerKind.Admin))
            .Concat(EmbedCases.Select(c => (c.Name, c.Table, c.Verb, c.Query, c.Prefer, c.Body, Range: (string?)null, Accept: (string?)null,
                Caller: CallerKind.Admin)))
            .Concat(HeaderCases);
        foreach (var (name, table, verb, query, prefer, body, range, accept, kind) in all)
        {
            var caller = kind == CallerKind.User
                ? new RestCaller("snap", CallerKind.User, Guid.Parse("00000000-0000-4000-8000-000000000001"), "user")
                : new RestCaller("snap", kind);
            var pairs = query.Length == 0 ? [] : query.Split('&').Select(p => p.Split('=', 2))
                .Select(kv => new KeyValuePair<string, string>(kv[0], Uri.UnescapeDataString(kv[1])));
            var req = RestParser.Parse(verb, table, pairs, prefer, range, accept, body);
            var plan = RestSql.Build(req, Schema.Tables[table], caller, "user_id", 1000, Schema);
            sb.Append("## ").Append(name).Append('\n');
            if (plan.CsvHeader is not null) sb.Append("csv header: ").Append(plan.CsvHeader).Append('\n');
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
