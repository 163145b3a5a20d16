// The Schema tab's DDL on a real PostgreSQL: every supported type, secure defaults at once, errors as data.
using DbStudio.Core.Schema;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Integration;

public class SchemaEditorTests(TestApp app)
{
    private async Task<(HttpClient Client, string Id)> ProjectAsync()
    {
        var client = await app.NewUserClientAsync();
        return (client, (await TestApp.CreateProjectAsync(client)).Id);
    }

    private static async Task<string> Scalar(HttpClient c, string id, string sql) =>
        (await TestApp.SqlAsync(c, id, sql))[0].GetProperty("rows")[0][0].ToString();

    [Fact]
    public async Task Creates_a_table_with_every_supported_type_and_protects_it_at_once()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        var columns = SchemaEditor.Types.Select((t, i) => new NewColumn($"c{i}", t, Nullable: i % 2 == 0)).ToList();
        columns[0] = columns[0] with { Name = "id", Type = "SERIAL", PrimaryKey = true };
        columns[1] = columns[1] with { Default = "42" };
        Assert.Null(await editor.CreateTableAsync(id, "everything", columns, ownerColumn: true));

        var types = await Scalar(c, id, "select string_agg(format_type(atttypid, atttypmod), ',' order by attnum) from pg_attribute " +
            "where attrelid = 'everything'::regclass and attnum > 0");
        Assert.Equal("integer,integer,bigint,integer,boolean,double precision,numeric,timestamp with time zone,date,json,jsonb,uuid," +
                     "character varying(255),uuid", types);
        Assert.Equal("True", await Scalar(c, id, "select relrowsecurity from pg_class where oid = 'everything'::regclass"));
        Assert.Equal("42", await Scalar(c, id, "select pg_get_expr(adbin, adrelid) from pg_attrdef where adrelid = 'everything'::regclass and adnum = 2"));
        Assert.Equal("True", await Scalar(c, id, "select attnotnull from pg_attribute where attrelid = 'everything'::regclass and attname = 'c1'"));  // not nullable
        Assert.Equal("False", await Scalar(c, id, "select attnotnull from pg_attribute where attrelid = 'everything'::regclass and attname = 'c2'")); // nullable
    }

    [Fact]
    public async Task Adds_and_drops_columns_and_tables()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        Assert.Null(await editor.CreateTableAsync(id, "notes", [new("id", "SERIAL", PrimaryKey: true), new("body", "TEXT")], false));
        Assert.Null(await editor.AddColumnAsync(id, "notes", new("created", "TIMESTAMPTZ", Nullable: false, Default: "now()")));
        await TestApp.SqlAsync(c, id, "insert into notes (body) values ('x')");
        Assert.Equal("1", await Scalar(c, id, "select count(*) from notes where created is not null"));
        Assert.Null(await editor.DropColumnAsync(id, "notes", "body"));
        Assert.Equal("id,created", await Scalar(c, id, "select string_agg(attname, ',' order by attnum) from pg_attribute where attrelid = 'notes'::regclass and attnum > 0 and not attisdropped"));
        Assert.Null(await editor.DropTableAsync(id, "notes"));
        Assert.Equal("True", await Scalar(c, id, "select to_regclass('notes') is null"));
    }

    [Fact]
    public async Task Bad_input_gets_postgres_error_and_changes_nothing()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        Assert.Null(await editor.CreateTableAsync(id, "t", [new("id", "SERIAL", PrimaryKey: true)], false));
        Assert.Equal("42701", (await editor.AddColumnAsync(id, "t", new("id", "TEXT")))!.Code);          // duplicate column
        Assert.Equal("22P02", (await editor.AddColumnAsync(id, "t", new("n", "INTEGER", Default: "'abc'")))!.Code);
        Assert.Equal("22023", (await editor.AddColumnAsync(id, "t", new("n", "MONEY")))!.Code);          // not offered
        Assert.Equal("22023", (await editor.AddColumnAsync(id, "t", new("n", "TEXT", Default: "'a'; drop table t")))!.Code);
        Assert.Equal("42P07", (await editor.CreateTableAsync(id, "t", [new("x", "TEXT")], false))!.Code); // exists
        Assert.Equal("42703", (await editor.DropColumnAsync(id, "t", "nope"))!.Code);
        Assert.Null(await editor.CreateTableAsync(id, "x\"; drop schema public; --", [new("id", "INTEGER")], false)); // a weird name is just a name
        Assert.Equal("id", await Scalar(c, id, "select string_agg(attname, ',') from pg_attribute where attrelid = 't'::regclass and attnum > 0 and not attisdropped"));
        Assert.Equal("False", await Scalar(c, id, "select to_regclass(quote_ident('x\"; drop schema public; --')) is null"));
    }

    [Fact]
    public async Task Changes_columns_in_one_transaction_and_a_refused_type_change_keeps_everything()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        Assert.Null(await editor.CreateTableAsync(id, "items", [new("id", "SERIAL", PrimaryKey: true), new("qty", "TEXT"), new("label", "TEXT")], false));
        await TestApp.SqlAsync(c, id, "insert into items (qty, label) values ('12', 'a'), (' 7', 'b')");

        // text → integer with PostgreSQL's cast, renamed, a default and NOT NULL: one transaction.
        Assert.Null(await editor.ChangeColumnAsync(id, "items", "qty", new ColumnChange(NewName: "quantity", Type: "INTEGER", Default: "1", Nullable: false)));
        Assert.Equal("integer|1|t|19", await Scalar(c, id,
            "select concat_ws('|', format_type(atttypid, atttypmod), pg_get_expr(adbin, adrelid), attnotnull, (select sum(quantity) from items)) " +
            "from pg_attribute left join pg_attrdef on adrelid = attrelid and adnum = attnum where attrelid = 'items'::regclass and attname = 'quantity'"));

        // A label that is no number: PostgreSQL refuses, with its message, and the rename asked for with it does not happen.
        var refused = await editor.ChangeColumnAsync(id, "items", "label", new ColumnChange(NewName: "amount", Type: "INTEGER"));
        Assert.Equal("22P02", refused!.Code);
        Assert.Contains("invalid input syntax for type integer", refused.Message);
        Assert.Equal("label:text", await Scalar(c, id,
            "select attname || ':' || format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'items'::regclass and attnum = 3"));

        Assert.Null(await editor.ChangeColumnAsync(id, "items", "quantity", new ColumnChange(Default: "", Nullable: true)));
        Assert.Equal("t|f", await Scalar(c, id,
            "select concat_ws('|', not atthasdef, attnotnull) from pg_attribute where attrelid = 'items'::regclass and attname = 'quantity'"));
        Assert.Equal("22023", (await editor.ChangeColumnAsync(id, "items", "quantity", new ColumnChange(Default: "1; drop table items")))!.Code);
        Assert.Equal("22023", (await editor.ChangeColumnAsync(id, "items", "quantity", new ColumnChange(Type: "MONEY")))!.Code);
        Assert.Equal("22023", (await editor.ChangeColumnAsync(id, "items", "quantity", new ColumnChange()))!.Code);
    }

    [Fact]
    public async Task Unique_constraints_indexes_and_foreign_keys_come_and_go_and_the_ddl_shows_them()
    {
        var (c, id) = await ProjectAsync();
        var editor = app.Service<SchemaEditor>();
        Assert.Null(await editor.CreateTableAsync(id, "authors", [new("id", "SERIAL", PrimaryKey: true), new("email", "TEXT")], false));
        Assert.Null(await editor.CreateTableAsync(id, "books", [new("id", "SERIAL", PrimaryKey: true), new("author_id", "INTEGER"), new("title", "TEXT")], false));

        Assert.Null(await editor.AddUniqueAsync(id, "authors", ["email"]));
        Assert.Null(await editor.CreateIndexAsync(id, "books", ["title"], unique: false));
        Assert.Null(await editor.AddForeignKeyAsync(id, "books", "author_id", "authors", "id", OnDelete.Cascade));
        await TestApp.SqlAsync(c, id, "insert into authors (email) values ('a@x'); insert into books (author_id, title) values (1, 'T')");
        Assert.Equal("23505", (await TestApp.SqlAsync(c, id, "insert into authors (email) values ('a@x')"))[0].GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("23503", (await TestApp.SqlAsync(c, id, "insert into books (author_id) values (99)"))[0].GetProperty("error").GetProperty("code").GetString());

        var books = (await editor.DescribeAsync(id, "books"))!;
        var fk = Assert.Single(books.Constraints, k => k.Kind == 'f');
        Assert.Equal(["author_id"], fk.Columns);
        Assert.Equal("authors", fk.References);
        Assert.Contains("ON DELETE CASCADE", fk.Definition);
        var index = Assert.Single(books.Indexes, i => i.Constraint is null);
        Assert.Equal("books_title_idx", index.Name);
        Assert.StartsWith("CREATE TABLE books (\n    id integer NOT NULL DEFAULT nextval(", books.Ddl);
        Assert.Contains("FOREIGN KEY (author_id) REFERENCES", books.Ddl);
        Assert.Contains("CREATE INDEX books_title_idx", books.Ddl);

        await TestApp.SqlAsync(c, id, "delete from authors");
        Assert.Equal("0", await Scalar(c, id, "select count(*) from books")); // cascaded

        Assert.Null(await editor.DropConstraintAsync(id, "books", fk.Name));
        Assert.Null(await editor.DropIndexAsync(id, index.Name));
        var unique = Assert.Single((await editor.DescribeAsync(id, "authors"))!.Constraints, k => k.Kind == 'u');
        Assert.Null(await editor.DropConstraintAsync(id, "authors", unique.Name));
        Assert.Equal(["books_pkey"], (await editor.DescribeAsync(id, "books"))!.Indexes.Select(i => i.Name));
        Assert.Equal("42P01", (await editor.AddForeignKeyAsync(id, "books", "author_id", "nope", "id", OnDelete.SetNull))!.Code);
        Assert.Null(await editor.DescribeAsync(id, "nope"));
    }
}
