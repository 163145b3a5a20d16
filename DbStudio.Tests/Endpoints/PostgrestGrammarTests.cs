// The rest of the grammar postgrest-js exposes (issue 15 item 3), over HTTP on a real PostgreSQL: JSON paths, full-text
// search, containment and overlap on arrays, ranges and jsonb, regex matches, CSV, HEAD counts, missing=default,
// return=headers-only and tx=rollback, each answered as PostgREST 12/13 answers it.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class PostgrestGrammarTests(TestApp app)
{
    private async Task<ProjectInfo> SetupAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "grammar");
        var results = await TestApp.SqlAsync(owner, p.Id, """
            create table docs (id serial primary key, title text not null, body text, data jsonb, during int4range, tags text[],
              tsv tsvector generated always as (to_tsvector('english', coalesce(body, ''))) stored);
            insert into docs (title, body, data, during, tags) values
              ('cats', 'The fat cats sat on the mat', '{"a": {"b": "x", "n": 1}, "list": [10, 20], "k": "one"}', '[1,5)', '{red,green}'),
              ('dogs', 'A dog chased the rats', '{"a": {"b": "y", "n": 2}, "list": [30], "k": "two"}', '[5,10)', '{blue}'),
              ('birds', 'Birds sing; cats listen', '{"a": {"b": "z", "n": 3}, "k": "three"}', '[20,30)', '{red}');
            create table items (id serial primary key, name text, qty int not null default 7, note text default 'none',
              made date default '2024-01-01');
            """);
        Assert.All(results, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));
        return p;
    }

    private async Task<HttpResponseMessage> SendAsync(ProjectInfo p, HttpMethod method, string pathAndQuery, string? body = null,
        string? accept = null, params string[] prefer)
    {
        var req = new HttpRequestMessage(method, $"/db/{p.Id}/rest/{pathAndQuery}");
        req.Headers.Add("apikey", p.AnonKey);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        if (accept is not null) req.Headers.TryAddWithoutValidation("Accept", accept);
        foreach (var pref in prefer) req.Headers.Add("Prefer", pref);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        return await app.Factory.CreateClient().SendAsync(req);
    }

    private async Task<JsonElement> GetAsync(ProjectInfo p, string pathAndQuery)
    {
        var res = await SendAsync(p, HttpMethod.Get, pathAndQuery);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.OK, $"{pathAndQuery}: {res.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private async Task<int[]> IdsAsync(ProjectInfo p, string query) =>
        (await GetAsync(p, "docs?select=id&order=id&" + query)).EnumerateArray().Select(e => e.GetProperty("id").GetInt32()).ToArray();

    private static void AssertJson(string expected, JsonElement actual) =>
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(expected).RootElement, actual), $"expected {expected}\nactual   {actual}");

    [Fact]
    public async Task Json_paths_select_filter_and_order_with_postgrests_output_keys()
    {
        var p = await SetupAsync();
        // The output key is the last key of the path; an alias wins; an index keeps the last key before it (or the column).
        AssertJson("""[{"id":1,"b":"x","n":{"b":"x","n":1},"list":20,"first":10,"data":null,"k":"one","num":1}]""",
            await GetAsync(p, "docs?select=id,data->a->>b,n:data->a,data->list->1,first:data->list->0,data->0,data->>k,num:data->a->n::int&id=eq.1"));
        Assert.Equal((int[])[2], await IdsAsync(p, "data->a->>b=eq.y"));
        Assert.Equal((int[])[1, 3], await IdsAsync(p, "data->a->>b=in.(x,z)"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "data->a->n=gt.1"));
        Assert.Equal((int[])[1], await IdsAsync(p, "data->a=cs.{\"b\":\"x\"}"));
        AssertJson("""[{"id":3},{"id":2},{"id":1}]""", await GetAsync(p, "docs?select=id&order=data->a->>n.desc"));
        AssertJson("""[{"id":2},{"id":3},{"id":1}]""", await GetAsync(p, "docs?select=id&order=data->>k.desc.nullslast"));
    }

    [Fact]
    public async Task Full_text_search_with_and_without_a_language()
    {
        var p = await SetupAsync();
        Assert.Equal((int[])[1, 3], await IdsAsync(p, "tsv=fts.cat"));
        Assert.Equal((int[])[1, 3], await IdsAsync(p, "tsv=fts(english).cats"));
        Assert.Equal((int[])[1], await IdsAsync(p, "tsv=plfts(english).fat%20cats"));
        Assert.Equal((int[])[1], await IdsAsync(p, "tsv=phfts(english).fat%20cat"));
        Assert.Equal(Array.Empty<int>(), await IdsAsync(p, "tsv=phfts(english).cat%20fat"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "tsv=wfts(english).dog%20or%20birds"));
        Assert.Equal((int[])[2], await IdsAsync(p, "tsv=not.fts.cat"));
        // A text column is searched through to_tsvector; the configuration applies to both sides.
        Assert.Equal((int[])[2], await IdsAsync(p, "body=fts(english).chasing"));
        Assert.Equal(Array.Empty<int>(), await IdsAsync(p, "body=fts(simple).chasing"));
        // An unknown configuration is PostgreSQL's error, a 4xx.
        var bad = await SendAsync(p, HttpMethod.Get, "docs?tsv=fts(klingon).cat");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("42704", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Contains_contained_overlaps_on_arrays_ranges_and_jsonb_and_regex_matches()
    {
        var p = await SetupAsync();
        Assert.Equal((int[])[1, 3], await IdsAsync(p, "tags=cs.{red}"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "tags=cd.{red,blue}"));
        Assert.Equal((int[])[1, 2], await IdsAsync(p, "tags=ov.{green,blue}"));
        Assert.Equal((int[])[1], await IdsAsync(p, "during=cs.[2,3]"));
        Assert.Equal((int[])[1, 2], await IdsAsync(p, "during=cd.[0,10)"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "during=ov.[8,25)"));
        Assert.Equal((int[])[1], await IdsAsync(p, "during=sl.[5,6)"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "during=adj.[10,20)"));
        Assert.Equal((int[])[2], await IdsAsync(p, "data=cs.{\"k\":\"two\"}"));
        Assert.Equal((int[])[3], await IdsAsync(p, "data=cd.{\"a\":{\"b\":\"z\",\"n\":3},\"k\":\"three\",\"extra\":1}"));
        Assert.Equal((int[])[1, 3], await IdsAsync(p, "title=match.^[bc]"));
        Assert.Equal((int[])[2], await IdsAsync(p, "title=imatch.^DO"));
        Assert.Equal((int[])[2], await IdsAsync(p, "title=not.imatch.^C&title=like(any).{d*,x*}"));
        Assert.Equal((int[])[1, 2], await IdsAsync(p, "title=ilike(any).{C*,D*}"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "id=gt(all).{0,1}"));
        Assert.Equal((int[])[2, 3], await IdsAsync(p, "title=isdistinct.cats"));
    }

    [Fact]
    public async Task Csv_head_counts_headers_only_and_rollback()
    {
        var p = await SetupAsync();
        var csv = await SendAsync(p, HttpMethod.Get, "docs?select=id,title,tags,data->a->>b&order=id", accept: "text/csv");
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType!.MediaType);
        Assert.Equal("id,title,tags,b\n1,cats,\"{red,green}\",x\n2,dogs,{blue},y\n3,birds,{red},z", await csv.Content.ReadAsStringAsync());

        var head = await SendAsync(p, HttpMethod.Head, "docs?tags=cs.{red}", prefer: "count=exact");
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("0-1/2", head.Content.Headers.GetValues("Content-Range").Single());
        Assert.Equal("", await head.Content.ReadAsStringAsync());

        var created = await SendAsync(p, HttpMethod.Post, "items", """{"name":"a"}""", prefer: "return=headers-only");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("/items?id=eq.1", created.Headers.Location!.OriginalString);
        Assert.Equal("", await created.Content.ReadAsStringAsync());
        Assert.Equal("return=headers-only", created.Headers.GetValues("Preference-Applied").Single());

        // tx=rollback: the answer as usual (with the representation), nothing stays
        var rolled = await SendAsync(p, HttpMethod.Post, "items?select=name", """[{"name":"b"},{"name":"c"}]""", prefer: ["return=representation", "tx=rollback"]);
        Assert.Equal(HttpStatusCode.Created, rolled.StatusCode);
        AssertJson("""[{"name":"b"},{"name":"c"}]""", JsonDocument.Parse(await rolled.Content.ReadAsStringAsync()).RootElement);
        Assert.Equal("return=representation, tx=rollback", rolled.Headers.GetValues("Preference-Applied").Single());
        var deleted = await SendAsync(p, HttpMethod.Delete, "items?id=eq.1", prefer: "tx=rollback");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        AssertJson("""[{"name":"a"}]""", await GetAsync(p, "items?select=name"));
    }

    [Fact]
    public async Task Bodies_of_every_size_come_back_whole_and_writes_without_a_representation_have_none()
    {
        var p = await SetupAsync();
        // 3 MB of text in one row: larger than the pooled body buffers (1 MB), so it takes a buffer of its own.
        var big = await SendAsync(p, HttpMethod.Post, "docs", $$"""{"title":"big","body":"{{new string('x', 3_000_000)}}"}""");
        Assert.Equal(HttpStatusCode.Created, big.StatusCode);
        var plain = await GetAsync(p, "docs?select=id,body&title=eq.big");                // plain columns: .NET writes the JSON
        Assert.Equal(3_000_000, plain[0].GetProperty("body").GetString()!.Length);
        var asJson = await GetAsync(p, "docs?select=id,body,tags&title=eq.big");          // an array column: row_to_json
        Assert.Equal(3_000_000, asJson[0].GetProperty("body").GetString()!.Length);
        var csv = await SendAsync(p, HttpMethod.Get, "docs?select=title,body&title=eq.big", accept: "text/csv");
        Assert.Equal("title,body\nbig," + new string('x', 3_000_000), await csv.Content.ReadAsStringAsync());
        // Small answers after the big one: nothing of it shows through a reused buffer.
        AssertJson("""[{"id":1,"title":"cats"}]""", await GetAsync(p, "docs?select=id,title&id=eq.1"));
        AssertJson("""[]""", await GetAsync(p, "docs?select=id,title&id=eq.999"));

        // A write without return=representation answers 204 with no body (not an empty one).
        var patched = await SendAsync(p, HttpMethod.Patch, "docs?id=eq.1", """{"title":"cats!"}""");
        Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);
        Assert.Equal("", await patched.Content.ReadAsStringAsync());
        var deleted = await SendAsync(p, HttpMethod.Delete, "docs?title=eq.big");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
    }

    [Fact]
    public async Task Missing_keys_of_a_bulk_insert_take_the_column_default_with_missing_default()
    {
        var p = await SetupAsync();
        var body = """[{"name":"a","qty":1,"note":null},{"name":"b"}]""";
        var plain = await SendAsync(p, HttpMethod.Post, "items?select=name,qty,note,made", """[{"name":"x","qty":1}]""", prefer: "return=representation");
        Assert.Equal(HttpStatusCode.Created, plain.StatusCode);
        // Without the preference a missing key is NULL: qty is NOT NULL, so PostgreSQL refuses (PostgREST answers the same).
        var refused = await SendAsync(p, HttpMethod.Post, "items", body, prefer: "return=representation");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("23502", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        var res = await SendAsync(p, HttpMethod.Post, "items?select=name,qty,note,made", body, prefer: ["return=representation", "missing=default"]);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.Created, text);
        // An explicit null stays null; a missing key is the default.
        AssertJson("""[{"name":"a","qty":1,"note":null,"made":"2024-01-01"},{"name":"b","qty":7,"note":"none","made":"2024-01-01"}]""",
            JsonDocument.Parse(text).RootElement);
        Assert.Equal("missing=default, return=representation", res.Headers.GetValues("Preference-Applied").Single());
        // Nothing of the refused insert stayed.
        AssertJson("""[{"name":"x"},{"name":"a"},{"name":"b"}]""", await GetAsync(p, "items?select=name&order=id"));
    }

    [Fact]
    public async Task Reads_run_read_only_and_preference_applied_names_only_what_was_applied()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "read only");
        // A view whose row comes from a function that writes.
        var results = await TestApp.SqlAsync(owner, p.Id, $$"""
            create table log (id serial primary key, at timestamptz default now());
            create table notes (id serial primary key, n int);
            create function bump() returns int language plpgsql as $$ begin insert into {{ProjectNaming.Schema(p.Id)}}.log default values;
              return 1; end $$;
            create view bumped as select bump() as n;
            """);
        Assert.All(results, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));

        // GET and HEAD run READ ONLY: PostgreSQL refuses the write (25006, PostgREST's 405) and nothing is written.
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head })
        {
            var read = await SendAsync(p, method, "bumped");
            Assert.True(read.StatusCode == HttpStatusCode.MethodNotAllowed, $"{method} {read.StatusCode} {await read.Content.ReadAsStringAsync()}");
            if (method == HttpMethod.Get)
                Assert.Equal("25006", JsonDocument.Parse(await read.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        }
        AssertJson("[]", await GetAsync(p, "log?select=id"));
        // Writes are not read-only: the same function runs for an insert's default.
        await TestApp.SqlAsync(owner, p.Id, "alter table notes alter column n set default bump()");
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(p, HttpMethod.Post, "notes", "{}")).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await SendAsync(p, HttpMethod.Post, "notes", "{}")).StatusCode);
        AssertJson("""[{"id":1},{"id":2}]""", await GetAsync(p, "log?select=id&order=id"));

        // Preference-Applied says what the request ran with: a read counts but resolves nothing, a PATCH returns the
        // representation but neither resolves, fills defaults nor answers with headers only (PostgREST's rule).
        var get = await SendAsync(p, HttpMethod.Get, "log?select=id", prefer: ["count=exact", "resolution=merge-duplicates"]);
        Assert.Equal("0-1/2", get.Content.Headers.GetValues("Content-Range").Single());
        Assert.Equal("count=exact", get.Headers.GetValues("Preference-Applied").Single());
        var patched = await SendAsync(p, HttpMethod.Patch, "notes?id=eq.1&select=id", """{"n":5}""",
            prefer: ["return=representation, resolution=merge-duplicates, missing=default, tx=commit"]);
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.Equal("return=representation, tx=commit", patched.Headers.GetValues("Preference-Applied").Single());
        var upsert = await SendAsync(p, HttpMethod.Post, "notes?on_conflict=id", """{"id":1,"n":6}""",
            prefer: ["resolution=merge-duplicates", "count=exact"]);
        Assert.Equal(HttpStatusCode.Created, upsert.StatusCode);
        Assert.Equal("*/1", upsert.Content.Headers.GetValues("Content-Range").Single());
        Assert.Equal("resolution=merge-duplicates, count=exact", upsert.Headers.GetValues("Preference-Applied").Single());
    }
}
