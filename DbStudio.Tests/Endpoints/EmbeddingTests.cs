// Resource embedding over HTTP on a real PostgreSQL (issue 15): PostgREST's shapes (to-one object or null, to-many
// array), hints and its PGRST200/PGRST201 answers, embedded filters, !inner, writes that embed, the schema cache
// following DDL, and embedded tables read under their own privileges and policies.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class EmbeddingTests(TestApp app)
{
    private const string Schema = """
        create table teams (id serial primary key, name text not null);
        create table people (id serial primary key, name text not null, team_id int references teams(id));
        create table messages (id serial primary key, body text not null, sender_id int not null references people(id),
          receiver_id int references people(id));
        create table profiles (person_id int primary key references people(id), bio text);
        create table tags (id serial primary key, name text not null);
        create table person_tags (person_id int references people(id), tag_id int references tags(id), primary key (person_id, tag_id));
        create table employees (id serial primary key, name text not null, manager_id int references employees(id));
        create table secrets (id serial primary key, person_id int references people(id), code text);
        insert into teams (name) values ('red'), ('blue'), ('empty');
        insert into people (name, team_id) values ('ann', 1), ('bob', 1), ('cid', null), ('dan', 2);
        insert into messages (body, sender_id, receiver_id) values ('hi', 1, 2), ('yo', 2, 1), ('note to self', 3, null);
        insert into profiles values (1, 'ann bio');
        insert into tags (name) values ('x'), ('y'), ('z');
        insert into person_tags values (1, 1), (1, 2), (2, 3);
        insert into employees (name, manager_id) values ('boss', null), ('mid', 1), ('low', 2);
        insert into secrets (person_id, code) values (1, 's1'), (2, 's2');
        """;

    private async Task<ProjectInfo> SetupAsync(HttpClient owner)
    {
        var p = await TestApp.CreateProjectAsync(owner, "embedding");
        var results = await TestApp.SqlAsync(owner, p.Id, Schema);
        Assert.All(results, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));
        foreach (var t in new[] { "teams", "people", "messages", "profiles", "tags", "person_tags", "employees" })
            (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/{t}/access", new
            {
                anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = false, auth_update_own = false,
                auth_delete_own = false, user_id_col = (string?)null,
            })).EnsureSuccessStatusCode();
        return p;
    }

    private async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string url,
        string anonKey, string? bearer = null, string? body = null, params string[] prefer)
    {
        var req = new HttpRequestMessage(method, url);
        req.Headers.Add("apikey", anonKey);
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        foreach (var p in prefer) req.Headers.Add("Prefer", p);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        var res = await app.Factory.CreateClient().SendAsync(req);
        return (res.StatusCode, await res.Content.ReadAsStringAsync(), res);
    }

    private async Task<JsonElement> GetJsonAsync(ProjectInfo p, string pathAndQuery, string? bearer = null)
    {
        var (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/{pathAndQuery}", p.AnonKey, bearer ?? p.ApiKey);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static void AssertJson(string expected, JsonElement actual) =>
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(expected).RootElement, actual), $"expected {expected}\nactual   {actual}");

    [Fact]
    public async Task To_one_embeds_are_objects_or_null_and_to_many_embeds_are_arrays()
    {
        var owner = await app.NewUserClientAsync();
        var p = await SetupAsync(owner);

        // many-to-one, aliased: an object, or null without a team
        AssertJson("""[{"name":"ann","team":{"name":"red"}},{"name":"cid","team":null}]""",
            await GetJsonAsync(p, "people?select=name,team:teams(name)&name=in.(ann,cid)&order=id"));
        // one-to-many: an array, [] without rows; embedded order, limit, offset and filters
        AssertJson("""[{"name":"red","people":[{"name":"bob"},{"name":"ann"}]},{"name":"blue","people":[{"name":"dan"}]},{"name":"empty","people":[]}]""",
            await GetJsonAsync(p, "teams?select=name,people(name)&people.order=name.desc&order=id"));
        AssertJson("""[{"name":"red","people":[{"name":"ann"}]}]""",
            await GetJsonAsync(p, "teams?select=name,people(name)&people.order=name.desc&people.limit=1&people.offset=1&id=eq.1"));
        AssertJson("""[{"id":1,"people":[{"id":2}]}]""",
            await GetJsonAsync(p, "teams?select=id,people(id)&people.or=(name.eq.bob,name.eq.zed)&id=eq.1"));
        // embeds only, no column of the top level (PostgREST accepts it)
        AssertJson("""[{"people":[{"id":2}]}]""",
            await GetJsonAsync(p, "teams?select=people(id)&people.or=(name.eq.bob,name.eq.zed)&id=eq.1"));
        // many-to-many through person_tags, nested under a one-to-many
        AssertJson("""[{"name":"red","people":[{"name":"ann","tags":[{"name":"x"},{"name":"y"}]},{"name":"bob","tags":[{"name":"z"}]}]}]""",
            await GetJsonAsync(p, "teams?select=name,people(name,tags(name))&people.order=id&people.tags.order=name&id=eq.1"));
        // one-to-one (the key is the primary key): an object from both sides
        AssertJson("""[{"name":"ann","profiles":{"bio":"ann bio"}},{"name":"bob","profiles":null}]""",
            await GetJsonAsync(p, "people?select=name,profiles(bio)&id=lte.2&order=id"));
        AssertJson("""[{"bio":"ann bio","people":{"name":"ann"}}]""", await GetJsonAsync(p, "profiles?select=bio,people(name)"));
        // a self reference: the column names the parent, the table name the children
        AssertJson("""[{"name":"mid","manager_id":{"name":"boss"},"employees":[{"name":"low"}]}]""",
            await GetJsonAsync(p, "employees?select=name,manager_id(name),employees(name)&id=eq.2"));
        // * with an embed, and a to-one spread
        AssertJson("""[{"id":4,"name":"dan","team_id":2,"teams":{"id":2,"name":"blue"}}]""", await GetJsonAsync(p, "people?select=*,teams(*)&id=eq.4"));
        AssertJson("""[{"name":"dan","team":"blue"}]""", await GetJsonAsync(p, "people?select=name,...teams(team:name)&id=eq.4"));
    }

    [Fact]
    public async Task Hints_disambiguate_and_ambiguity_or_no_relationship_answer_as_postgrest_does()
    {
        var owner = await app.NewUserClientAsync();
        var p = await SetupAsync(owner);

        var (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/messages?select=body,people(name)", p.AnonKey, p.ApiKey);
        Assert.Equal((HttpStatusCode)300, status);
        var error = JsonDocument.Parse(body).RootElement;
        Assert.Equal("PGRST201", error.GetProperty("code").GetString());
        Assert.Equal("Could not embed because more than one relationship was found for 'messages' and 'people'", error.GetProperty("message").GetString());
        AssertJson("""
            [{"cardinality":"many-to-one","embedding":"messages with people","relationship":"messages_receiver_id_fkey using messages(receiver_id) and people(id)"},
             {"cardinality":"many-to-one","embedding":"messages with people","relationship":"messages_sender_id_fkey using messages(sender_id) and people(id)"}]
            """, error.GetProperty("details"));
        Assert.Equal("Try changing 'people' to one of the following: 'people!messages_receiver_id_fkey', 'people!messages_sender_id_fkey'. "
                     + "Find the desired relationship in the 'details' key.", error.GetProperty("hint").GetString());

        // a constraint hint, a column hint, a column as the target
        AssertJson("""[{"body":"hi","sender":{"name":"ann"},"receiver":{"name":"bob"}},{"body":"note to self","sender":{"name":"cid"},"receiver":null}]""",
            await GetJsonAsync(p, "messages?select=body,sender:people!messages_sender_id_fkey(name),receiver:people!receiver_id(name)&id=in.(1,3)&order=id"));
        AssertJson("""[{"body":"yo","sender_id":{"name":"bob"}}]""", await GetJsonAsync(p, "messages?select=body,sender_id(name)&id=eq.2"));
        // the other way round, a one-to-many needs the hint too
        AssertJson("""[{"name":"ann","sent":[{"body":"hi"}],"received":[{"body":"yo"}]}]""",
            await GetJsonAsync(p, "people?select=name,sent:messages!sender_id(body),received:messages!receiver_id(body)&id=eq.1"));

        (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/teams?select=*,tags(*)", p.AnonKey, p.ApiKey);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        error = JsonDocument.Parse(body).RootElement;
        Assert.Equal("PGRST200", error.GetProperty("code").GetString());
        Assert.Equal("Could not find a relationship between 'teams' and 'tags' in the schema cache", error.GetProperty("message").GetString());
        Assert.Equal($"Searched for a foreign key relationship between 'teams' and 'tags' in the schema 'proj_{p.Id}', but no matches were found.",
            error.GetProperty("details").GetString());
        (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/messages?select=*,people!nope(*)", p.AnonKey, p.ApiKey);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("using the hint 'nope'", body);

        // Malformed embeds and parameters of resources that are not embedded: 400, never 500.
        foreach (var bad in new[] { "people?select=*,teams(", "people?select=*,teams!a!b!c(*)", "people?select=name,teams(name)&tags.id=eq.1",
                     "people?select=name,teams(nope)", "people?select=name,teams(name)&teams.order=nope.sideways", "people?select=...teams",
                     "teams?select=name,...people(name)", "people?select=name,teams(name)&teams.limit=x" })
        {
            (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/{bad}", p.AnonKey, p.ApiKey);
            Assert.True(status == HttpStatusCode.BadRequest, $"{bad}: {status} {body}");
            Assert.True(JsonDocument.Parse(body).RootElement.TryGetProperty("code", out _), body);
        }
        (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/people?select=name,teams(name)&tags.id=eq.1", p.AnonKey, p.ApiKey);
        Assert.Contains("PGRST108", body);
    }

    [Fact]
    public async Task Inner_embeds_filter_the_parents_and_the_count()
    {
        var owner = await app.NewUserClientAsync();
        var p = await SetupAsync(owner);
        var (status, body, res) = await SendAsync(HttpMethod.Get,
            $"/db/{p.Id}/rest/teams?select=name,people!inner(name)&people.name=eq.dan", p.AnonKey, p.ApiKey, null, "count=exact");
        Assert.Equal(HttpStatusCode.OK, status);
        AssertJson("""[{"name":"blue","people":[{"name":"dan"}]}]""", JsonDocument.Parse(body).RootElement);
        Assert.Equal("0-0/1", res.Content.Headers.GetValues("Content-Range").Single());
        // without !inner every team stays, with the embedded rows filtered
        AssertJson("""[{"name":"red","people":[]},{"name":"blue","people":[{"name":"dan"}]},{"name":"empty","people":[]}]""",
            await GetJsonAsync(p, "teams?select=name,people(name)&people.name=eq.dan&order=id"));
        // an empty embed only filters; a to-one !inner drops rows whose key is null
        AssertJson("""[{"name":"red"},{"name":"blue"}]""", await GetJsonAsync(p, "teams?select=name,people!inner()&order=id"));
        AssertJson("""[{"name":"ann","teams":{"name":"red"}},{"name":"bob","teams":{"name":"red"}},{"name":"dan","teams":{"name":"blue"}}]""",
            await GetJsonAsync(p, "people?select=name,teams!inner(name)&order=id"));
    }

    [Fact]
    public async Task Writes_embed_in_their_response()
    {
        var owner = await app.NewUserClientAsync();
        var p = await SetupAsync(owner);
        var (status, body, _) = await SendAsync(HttpMethod.Post, $"/db/{p.Id}/rest/people?select=name,team:teams(name)", p.AnonKey, p.ApiKey,
            """[{"name":"eve","team_id":2},{"name":"fay"}]""", "return=representation");
        Assert.Equal(HttpStatusCode.Created, status);
        AssertJson("""[{"name":"eve","team":{"name":"blue"}},{"name":"fay","team":null}]""", JsonDocument.Parse(body).RootElement);

        (status, body, _) = await SendAsync(HttpMethod.Patch, $"/db/{p.Id}/rest/people?name=eq.fay&select=*,teams(name),tags(name)", p.AnonKey, p.ApiKey,
            """{"team_id":1}""", "return=representation");
        Assert.Equal(HttpStatusCode.OK, status);
        var row = JsonDocument.Parse(body).RootElement[0];
        Assert.Equal("red", row.GetProperty("teams").GetProperty("name").GetString());
        Assert.Equal(0, row.GetProperty("tags").GetArrayLength());

        (status, body, _) = await SendAsync(HttpMethod.Delete, $"/db/{p.Id}/rest/people?name=eq.fay&select=name,teams(name)", p.AnonKey, p.ApiKey,
            null, "return=representation");
        Assert.Equal(HttpStatusCode.OK, status);
        AssertJson("""[{"name":"fay","teams":{"name":"red"}}]""", JsonDocument.Parse(body).RootElement);
    }

    [Fact]
    public async Task Relationships_follow_ddl_made_after_the_first_request()
    {
        var owner = await app.NewUserClientAsync();
        var p = await SetupAsync(owner);
        AssertJson("""[{"name":"red"}]""", await GetJsonAsync(p, "teams?select=name&id=eq.1"));
        var results = await TestApp.SqlAsync(owner, p.Id, """
            create table mottos (id serial primary key, team_id int references teams(id), text text);
            insert into mottos (team_id, text) values (1, 'go red');
            """);
        Assert.All(results, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));
        AssertJson("""[{"name":"red","mottos":[{"text":"go red"}]}]""", await GetJsonAsync(p, "teams?select=name,mottos(text)&id=eq.1"));
    }

    [Fact]
    public async Task Embedded_tables_are_read_under_their_own_privileges_and_policies()
    {
        var owner = await app.NewUserClientAsync();
        var p = await SetupAsync(owner);
        // secrets keeps the secure defaults: anon holds no privilege on it → PostgreSQL refuses, 401 as for the table itself.
        var (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/people?select=name,secrets(code)", p.AnonKey);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("42501", JsonDocument.Parse(body).RootElement.GetProperty("code").GetString());
        Assert.DoesNotContain("s1", body);
        (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/secrets?select=code,people(name)", p.AnonKey);
        Assert.Equal(HttpStatusCode.Unauthorized, status);

        // A signed-in user may select (own rows) but secrets has no owner column: no rows are its own → embedded [].
        var signup = await SendAsync(HttpMethod.Post, $"/db/{p.Id}/auth/signup", p.AnonKey, null,
            """{"email":"sam@example.com","password":"a long enough password"}""");
        Assert.Equal(HttpStatusCode.Created, signup.Status);
        var token = JsonDocument.Parse(signup.Body).RootElement.GetProperty("access_token").GetString()!;
        AssertJson("""[{"name":"ann","secrets":[]},{"name":"bob","secrets":[]}]""",
            await GetJsonAsync(p, "people?select=name,secrets(code)&id=lte.2&order=id", token));

        // A privilege without a policy (granted in the console): RLS hides every row → [] for anon too, and a to-one is null.
        var grant = await TestApp.SqlAsync(owner, p.Id, $"grant select on secrets to proj_{p.Id}_anon");
        Assert.All(grant, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));
        (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/people?select=name,secrets(code)&id=eq.1", p.AnonKey);
        Assert.Equal(HttpStatusCode.OK, status);
        AssertJson("""[{"name":"ann","secrets":[]}]""", JsonDocument.Parse(body).RootElement);
        (status, body, _) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/people?select=name,secrets!inner(code)", p.AnonKey);
        AssertJson("[]", JsonDocument.Parse(body).RootElement);

        // The DB_API_KEY sees them.
        AssertJson("""[{"name":"ann","secrets":[{"code":"s1"}]}]""", await GetJsonAsync(p, "people?select=name,secrets(code)&id=eq.1"));
    }
}
