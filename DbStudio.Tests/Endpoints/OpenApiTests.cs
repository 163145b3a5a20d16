using System.Text.Json;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class OpenApiTests(TestApp app)
{
    [Theory]
    [InlineData("/")]
    [InlineData("")]
    public async Task The_rest_root_describes_the_tables_in_openapi_3(string suffix)
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, "create table todos (id serial primary key, title text not null, done boolean, meta jsonb)");
        var http = app.Factory.CreateClient();
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest{suffix}");
        req.Headers.Add("apikey", p.AnonKey);
        req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", p.ApiKey); // sees every table
        var res = await http.SendAsync(req);
        Assert.Equal(System.Net.HttpStatusCode.OK, res.StatusCode);
        var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement;
        Assert.StartsWith("3.", doc.GetProperty("openapi").GetString());
        var todos = doc.GetProperty("components").GetProperty("schemas").GetProperty("todos");
        Assert.Equal("integer", todos.GetProperty("properties").GetProperty("id").GetProperty("type").GetString());
        Assert.Equal("boolean", todos.GetProperty("properties").GetProperty("done").GetProperty("type").GetString());
        Assert.Contains("title", todos.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        Assert.True(doc.GetProperty("paths").GetProperty("/todos").TryGetProperty("post", out _));
        var anonymous = await http.GetAsync($"/db/{p.Id}/rest{suffix}");
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    private static async Task<(System.Net.HttpStatusCode Status, JsonElement Body)> GetAsync(HttpClient http, string url, string anonKey, string? bearer)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, url);
        req.Headers.Add("apikey", anonKey);
        if (bearer is not null) req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        var res = await http.SendAsync(req);
        return (res.StatusCode, JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private static string[] Names(JsonElement e) => e.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public async Task The_document_and_column_hints_show_each_credential_only_what_its_role_may_use()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, """
            create table posts (id serial primary key, title text, secret text, user_id uuid);
            create table diary (id serial primary key, entry text not null, user_id uuid);
            create table hidden (id serial primary key, x text)
            """);
        // posts: anon may read (the Access tab), then only id and title (a column grant made in the console).
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/posts/access", new
        {
            anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        })).EnsureSuccessStatusCode();
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/hidden/access", new
        {
            anon_select = false, anon_insert = false, auth_insert = false, auth_select_own = false, auth_update_own = false,
            auth_delete_own = false, user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();
        var anonRole = $"proj_{p.Id}_anon";
        Assert.All(await TestApp.SqlAsync(owner, p.Id, $"revoke select on posts from {anonRole}; grant select (id, title) on posts to {anonRole}"),
            r => Assert.False(r.TryGetProperty("error", out _), r.ToString()));
        _ = await TestApp.SqlAsync(owner, p.Id, "select 1"); // diary got its secure defaults (logged-in users only)

        var http = app.Factory.CreateClient();
        var signup = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
        {
            Content = JsonContent.Create(new { email = "reader@example.com", password = "reader password" }),
        };
        signup.Headers.Add("apikey", p.AnonKey);
        var session = await (await http.SendAsync(signup)).Content.ReadFromJsonAsync<JsonElement>();
        var userToken = session.GetProperty("access_token").GetString()!;
        var root = $"/db/{p.Id}/rest/";

        // ANON key: posts only, with the two columns anon may read, and only GET.
        var (status, anon) = await GetAsync(http, root, p.AnonKey, null);
        Assert.Equal(System.Net.HttpStatusCode.OK, status);
        Assert.Equal(["posts"], Names(anon.GetProperty("components").GetProperty("schemas")));
        Assert.Equal(["id", "title"], Names(anon.GetProperty("components").GetProperty("schemas").GetProperty("posts").GetProperty("properties")));
        Assert.Equal(["/posts"], Names(anon.GetProperty("paths")));
        Assert.Equal(["get"], Names(anon.GetProperty("paths").GetProperty("/posts")));
        Assert.DoesNotContain("secret", anon.ToString());
        Assert.DoesNotContain("hidden", anon.ToString());

        // A signed-in user: the tables the secure defaults open to users, all their columns; never "hidden".
        var (_, user) = await GetAsync(http, root, p.AnonKey, userToken);
        Assert.Equal(["diary", "posts"], Names(user.GetProperty("components").GetProperty("schemas")));
        Assert.Equal(["entry", "id", "user_id"], Names(user.GetProperty("components").GetProperty("schemas").GetProperty("diary").GetProperty("properties")));
        Assert.Equal(["delete", "get", "patch", "post"], Names(user.GetProperty("paths").GetProperty("/diary")));

        // The DB_API_KEY (the owner): everything.
        var (_, admin) = await GetAsync(http, root, p.AnonKey, p.ApiKey);
        Assert.Equal(["diary", "hidden", "posts"], Names(admin.GetProperty("components").GetProperty("schemas")));
        Assert.Equal(["id", "secret", "title", "user_id"], Names(admin.GetProperty("components").GetProperty("schemas").GetProperty("posts").GetProperty("properties")));

        // An unknown column's hint lists only the columns the caller's role may use.
        var (badStatus, bad) = await GetAsync(http, $"{root}posts?select=nope", p.AnonKey, null);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, badStatus);
        Assert.Equal("42703", bad.GetProperty("code").GetString());
        Assert.Contains("title", bad.GetProperty("hint").GetString());
        Assert.DoesNotContain("secret", bad.ToString());
        var (_, hiddenHint) = await GetAsync(http, $"{root}hidden?select=nope", p.AnonKey, null);
        Assert.Equal("42703", hiddenHint.GetProperty("code").GetString());
        Assert.DoesNotContain("\"x\"", hiddenHint.ToString());
        Assert.Equal(JsonValueKind.Null, hiddenHint.GetProperty("hint").ValueKind);
        var (_, ownerHint) = await GetAsync(http, $"{root}posts?select=nope", p.AnonKey, p.ApiKey);
        Assert.Contains("secret", ownerHint.GetProperty("hint").GetString());
    }
}
