// The RPC planner without a database: which overload a request calls (PostgREST's findProc), PostgREST's 404 text,
// and the exact statement and parameters of a call.
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;

namespace DbStudio.Tests.Unit;

public class RpcSqlTests
{
    private static FunctionInfo Fn(string name, FunctionParam[] ps, FunctionReturn returns = FunctionReturn.Scalar, bool set = false,
        char volatility = 'v', ColumnInfo[]? columns = null) => new()
    {
        Schema = "proj_x", Name = name, Oid = 1, IdentityArguments = "", Params = ps, ReturnType = "integer", ReturnsSet = set,
        Returns = returns, Columns = columns ?? [], Volatility = volatility, SecurityDefiner = false,
        ExecutableBy = new HashSet<RestRole> { RestRole.Owner },
    };

    private static RpcRequest Post(string fn, string body, string query = "", params string[] prefer) =>
        RpcParser.Parse(RestVerb.Post, fn, Query(query), prefer, null, null, body);

    private static RpcRequest Get(string fn, string query) => RpcParser.Parse(RestVerb.Get, fn, Query(query), [], null, null, null);

    private static IEnumerable<KeyValuePair<string, string>> Query(string q) => q.Length == 0 ? []
        : q.Split('&').Select(kv => kv.Split('=', 2)).Select(kv => new KeyValuePair<string, string>(kv[0], kv[1]));

    private static readonly FunctionInfo GreetOne = Fn("greet", [new("name", "text", true, false)]);
    private static readonly FunctionInfo GreetTwo = Fn("greet", [new("name", "text", true, false), new("punct", "text", false, false)]);
    private static readonly FunctionInfo Raw = Fn("greet", [new("", "json", true, false)]);

    private static FunctionInfo Resolve(RpcRequest req, params FunctionInfo[] overloads) =>
        RpcSql.Resolve(req, "proj_x", overloads, _ => true, overloads);

    [Fact]
    public void Overloads_are_chosen_by_argument_names_with_optional_parameters_as_postgrest_does()
    {
        // {name} fits both greet(name) and greet(name, punct default): ambiguous, as in PostgREST.
        var e = Assert.Throws<RestException>(() => Resolve(Post("greet", """{"name":"a"}"""), GreetOne, GreetTwo));
        Assert.Equal((300, "PGRST203"), (e.Status, e.Error.Code));
        Assert.Same(GreetTwo, Resolve(Post("greet", """{"name":"a","punct":"!"}"""), GreetOne, GreetTwo));
        Assert.Same(GreetOne, Resolve(Get("greet", "name=a"), GreetOne));
        // A filter on GET is not an argument; a value that is no filter is.
        Assert.Same(GreetOne, Resolve(Get("greet", "name=a&id=eq.1"), GreetOne));
        // The single unnamed json parameter takes any body when no named overload fits.
        Assert.Same(Raw, Resolve(Post("greet", """{"whatever":1}"""), GreetOne, Raw));
        Assert.Same(GreetOne, Resolve(Post("greet", """{"name":"a"}"""), GreetOne, Raw));
    }

    [Fact]
    public void No_fit_is_PGRST202_in_postgrests_words()
    {
        var e = Assert.Throws<RestException>(() => Resolve(Post("greet", """{"nam":"a","x":1}"""), GreetOne));
        Assert.Equal((404, "PGRST202"), (e.Status, e.Error.Code));
        Assert.Equal("Could not find the function proj_x.greet(nam, x) in the schema cache", e.Error.Message);
        Assert.Equal("Searched for the function proj_x.greet with parameters nam, x or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
            e.Error.Details);
        Assert.Equal("Perhaps you meant to call the function proj_x.greet(name)", e.Error.Hint);
        var get = Assert.Throws<RestException>(() => Resolve(Get("nothing", "")));
        Assert.Equal("Could not find the function proj_x.nothing without parameters in the schema cache", get.Error.Message);
        Assert.Equal("Searched for the function proj_x.nothing without parameters, but no matches were found in the schema cache.", get.Error.Details);
        // Not visible to the caller: no hint names it.
        var hidden = Assert.Throws<RestException>(() => RpcSql.Resolve(Post("gret", "{}"), "proj_x", [], _ => false, [GreetOne]));
        Assert.Null(hidden.Error.Hint);
    }

    [Fact]
    public void A_post_call_reads_its_arguments_with_json_to_record_and_passes_only_those_given()
    {
        var plan = RpcSql.Build(Post("greet", """{"name":"a"}"""), GreetTwo, maxRows: 1000);
        Assert.Equal("""WITH pgrst_call AS MATERIALIZED (SELECT pgrst_f.pgrst_scalar FROM json_to_record($1::json) AS pgrst_body("name" text), LATERAL (SELECT "proj_x"."greet"("name" := pgrst_body."name") AS pgrst_scalar) pgrst_f) SELECT NULL::bigint, count(*), coalesce((array_agg(to_json(pgrst_call.pgrst_scalar)::text))[1], 'null') FROM pgrst_call""",
            plan.Sql);
        Assert.Equal(["""{"name":"a"}"""], plan.Parameters.Select(p => p.Value));
        Assert.True(plan.IsWrite); // VOLATILE over POST
    }

    [Fact]
    public void A_set_returning_call_is_filtered_ordered_and_paged_with_the_table_planners_conditions()
    {
        var fn = Fn("cheap", [new("max_price", "numeric", false, false)], FunctionReturn.Rows, set: true, volatility: 's',
            columns: [new("id", "integer", 23, false, null, null, false), new("name", "text", 25, false, null, null, false)]);
        var plan = RpcSql.Build(Get("cheap", "max_price=2&select=name&name=like.*a*&order=name.desc&limit=5&offset=1"), fn, maxRows: 1000);
        Assert.Equal("""WITH pgrst_call AS MATERIALIZED (SELECT pgrst_f.* FROM LATERAL "proj_x"."cheap"("max_price" := $1::numeric) pgrst_f), pgrst_page AS (SELECT pgrst_t."name" AS "name" FROM pgrst_call AS pgrst_t WHERE pgrst_t."name"::text LIKE $2 ORDER BY pgrst_t."name" DESC LIMIT $3 OFFSET $4) SELECT NULL::bigint, (SELECT count(*) FROM pgrst_page), coalesce((SELECT '[' || string_agg(to_json(pgrst_page)::text, ',') || ']' FROM pgrst_page), '[]')""",
            plan.Sql);
        Assert.Equal(["2", "%a%", 5L, 1L], plan.Parameters.Select(p => p.Value));
        Assert.False(plan.IsWrite);
        var capped = RpcSql.Build(Get("cheap", "limit=5000"), fn, maxRows: 1000);
        Assert.Equal(1000L, capped.Parameters.Last().Value);
    }
}
