// Generators (FsCheck) for fuzzing: REST query strings and headers built from PostgREST's grammar pieces mixed with
// hostile fragments, and assistant messages built around <sql> tags. Shared by the test suite (a few thousand inputs)
// and the benchmark job `fuzz` (100,000+).
using FsCheck;
using FsCheck.Fluent;
using DbStudio.Core.Rest;
using DbStudio.Core.Catalog;
using DbStudio.Core.Auth;

namespace DbStudio.Tests.Fuzz;

public sealed record FuzzRequest(string Method, List<KeyValuePair<string, string>> Query, List<string> Prefer, string? Range,
    string? Accept, string? Body)
{
    public string QueryString => string.Join("&", Query.Select(kv => Uri.EscapeDataString(kv.Key) + "=" + Uri.EscapeDataString(kv.Value)));
}

public static class RestGrammar
{
    private static readonly string[] Columns = ["id", "name", "qty", "price", "meta", "at", "user_id", "nope", "*", "na me", "\"id\"",
        "id;drop table t", "id--", "ID", "", "meta->>a", "name::text", "pg_catalog.pg_authid",
        "t(id)", "other!inner(*)", "x:t!t_fkey(name)", "...t(id", "t!a!b(", "meta->0->>\"k\"", "n:meta->a::int", "t()"];
    private static readonly string[] Keys = ["select", "order", "limit", "offset", "or", "and", "not.or", "not.and", "columns",
        "on_conflict", "apikey", "id", "name", "qty", "price", "meta", "at", "nope", "", "select[]", "limit%00"];
    private static readonly string[] Pieces = ["eq.", "neq.", "gt.", "gte.", "lt.", "lte.", "like.", "ilike.", "match.", "imatch.",
        "in.", "is.", "cs.", "cd.", "ov.", "not.", "null", "true", "false", "unknown", "not_null", "(", ")", ",", ".", "*", "::", ":",
        "->", "->>", "%", "'", "\"", "\\", "{", "}", "[", "]", "1", "0", "-1", "42", "1e309", "9223372036854775808", "3.14", "NaN",
        "asc", "desc", "nullsfirst", "nullslast", "text", "int", "uuid", "jsonb", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "2024-01-02T03:04:05Z", " ", "\t", "\n", "\0", "é", "😀", "\ud800", "select", "drop", ";", "--", "/*", "$1", "or(", "and(",
        "id.eq.1", "name.eq.x", "qty.gt.2", "fts.", "plfts(english).", "wfts(", "like(any).", "eq(all).{1,2}", "isdistinct.",
        "sl.", "adj.[1,2)", "t.id", "t.order", "t.limit"];
    private static readonly string[] PreferValues = ["count=exact", "count=planned", "count=estimated", "count=wrong",
        "return=representation", "return=minimal", "return=headers-only", "resolution=merge-duplicates",
        "resolution=ignore-duplicates", "missing=default", "tx=rollback", "", "count=exact, return=minimal", "return="];
    private static readonly string[] Ranges = ["0-9", "5-", "10-5", "-5", "abc", "0-99999999999999999999", "items=0-9", ""];
    private static readonly string[] Accepts = ["application/json", "application/vnd.pgrst.object+json", "text/csv", "*/*", "x"];
    private static readonly string[] Bodies = ["{\"name\":\"x\"}", "[{\"name\":\"a\"},{\"name\":\"b\",\"qty\":2}]", "{}", "[]", "",
        "{", "null", "1", "\"s\"", "[1,2]", "{\"nope\":1}", "{\"qty\":\"many\"}", "{\"meta\":{\"a\":[1,{\"b\":null}]}}",
        "{\"id\":1,\"name\":null}", "[{\"name\":\"a\"},{\"qty\":1}]", "{\"name\":\"" + new string('x', 5000) + "\"}",
        "{\"user_id\":\"not-a-uuid\"}", "{\"at\":\"yesterday\"}", "{\"price\":1e400}", "{\"a\":" + new string('[', 100) + "}"];

    public static Gen<string> Text =>
        Gen.Frequency((8, Gen.Elements(Pieces)), (2, Gen.Elements(Columns)), (1, Gen.Elements(Columns).Select(c => c + ".")))
            .ListOf().Select(xs => string.Concat(xs.Take(12)));

    private static Gen<KeyValuePair<string, string>> Pair =>
        from key in Gen.Frequency((6, Gen.Elements(Keys)), (1, Text))
        from value in key switch
        {
            "select" or "columns" or "on_conflict" =>
                from cols in Gen.Elements(Columns).ListOf()
                from sep in Gen.Elements(",", ",", ":", "::", "(")
                select string.Join(sep, cols.Take(5)),
            "order" => Text.Select(t => t.Replace(' ', '.')),
            _ => Text,
        }
        select new KeyValuePair<string, string>(key, value);

    /// <summary>Well-formed pieces, so that many inputs get past the parser into PostgreSQL.</summary>
    private static Gen<KeyValuePair<string, string>> ValidPair => Gen.OneOf(
        from col in Gen.Elements("id", "name", "qty", "price", "at", "user_id", "meta")
        from op in Gen.Elements("eq", "neq", "gt", "gte", "lt", "lte", "is", "in", "like", "ilike", "not.eq")
        from v in Gen.Elements("1", "2", "19", "x", "row 1", "row*", "null", "true", "(1,2,3)", "2024-01-01", "1.5", "-3")
        select new KeyValuePair<string, string>(col, $"{op}.{v}"),
        Gen.Elements("id,name", "*", "n:name,qty", "id,price::text", "meta", "id,name,at", "id,meta->a->>b", "k:meta->>k::int", "*,t(id)").Select(v => new KeyValuePair<string, string>("select", v)),
        Gen.Elements("id.desc", "name.asc.nullslast", "qty,id", "at.desc.nullsfirst", "meta->>a.desc", "meta->a->0").Select(v => new KeyValuePair<string, string>("order", v)),
        Gen.Elements("5", "0", "50", "1000").Select(v => new KeyValuePair<string, string>("limit", v)),
        Gen.Elements("(id.eq.1,qty.gt.5)", "(name.like.row*,and(qty.lt.3,id.gt.0))").Select(v => new KeyValuePair<string, string>("or", v)));

    public static Gen<FuzzRequest> Request =>
        from method in Gen.Elements("GET", "GET", "GET", "HEAD", "POST", "PATCH", "DELETE")
        from pairs in Gen.Frequency((5, ValidPair), (1, Pair)).ListOf()
        from prefer in Gen.Elements(PreferValues).ListOf().Select(xs => xs.Take(Math.Min(xs.Count, 2)).ToList())
        from range in Gen.Frequency((5, Gen.Constant<string?>(null)), (1, Gen.Elements(Ranges).Select(r => (string?)r)))
        from accept in Gen.Frequency((5, Gen.Constant<string?>(null)), (1, Gen.Elements(Accepts).Select(a => (string?)a)))
        from body in Gen.Elements(Bodies).OrNull()
        select new FuzzRequest(method, pairs.Take(4).ToList(), prefer.Take(3).ToList(), range, accept, method is "POST" or "PATCH" ? body : null);

    /// <summary>Assistant messages: prose, code fences and sql tags in every state of nesting and repair.</summary>
    public static Gen<string> AssistantText =>
        Gen.Elements("<sql>", "</sql>", "<SQL>", "</Sql>", "<sql >", "< sql>", "select 1;", "create table t (id int);", "\n", "```sql\n",
                "```", "Here is the query:", "<sql><sql>", "</sql></sql>", "<", ">", "/", "sql", "😀", "\0", "'", "$$", "--")
            .ListOf().Select(xs => string.Concat(xs.Take(40)));

    public static readonly TableInfo Table = new()
    {
        Schema = "proj_fuzz", Name = "t", Oid = 1, Kind = 'r',
        Columns =
        [
            new("id", "integer", 23, true, "nextval('t_id_seq'::regclass)", 1, false), new("name", "text", 25, false, null, null, false),
            new("qty", "integer", 23, false, null, null, false), new("price", "numeric", 1700, false, null, null, false),
            new("meta", "jsonb", 3802, false, null, null, false), new("at", "timestamp with time zone", 1184, false, null, null, false),
            new("user_id", "uuid", 2950, false, null, null, false),
        ],
    };

    /// <summary>Parse and plan one input; returns the unexpected exception, if any.</summary>
    public static Exception? ParseAndPlan(FuzzRequest r)
    {
        try
        {
            var verb = r.Method switch { "GET" => RestVerb.Get, "HEAD" => RestVerb.Head, "POST" => RestVerb.Post, "PATCH" => RestVerb.Patch, _ => RestVerb.Delete };
            var req = RestParser.Parse(verb, "t", r.Query, r.Prefer, r.Range, r.Accept, r.Body);
            foreach (var caller in new[] { CallerKind.Anon, CallerKind.User, CallerKind.Admin })
                RestSql.Build(req, Table, new RestCaller("fuzz", caller, Guid.NewGuid(), "user"), "user_id", 1000);
            return null;
        }
        catch (RestException) { return null; }
        catch (Exception e) { return e; }
    }

    public static IEnumerable<T> Draw<T>(Gen<T> gen, int count, int size = 30) => gen.Sample(count, size);
}
